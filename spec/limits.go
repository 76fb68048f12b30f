package spec

import (
	"bytes"
	"fmt"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// The loader's limits. Each bounds work that would otherwise grow faster
// than the input, or memory far beyond it, and each is checked before CUE
// (or the Go decoding) sees a document, so that any one file up to the
// limits, valid or not, loads in under a second of CPU and 100 MB
// (BenchmarkLoadWorst and TestLoadWorstShapesStayBounded prove it), and a
// repository costs the sum of its files: linear in its size, in time; its
// memory follows its largest file and the State, as syntax trees are
// dropped once checked (BenchmarkLoadRepository and
// TestLoadRepositoryShapesStayBounded prove both at the repository limit). A file that
// breaks a limit is refused whole, with file:line and the limit's name;
// other files still load.
//
// The values are far above what a fleet repository holds: a group has a
// handful of windows and freezes, a file a few dozen documents, a document
// five levels of nesting, and a fleet of 1,000 groups and 1,000 channels
// is some 450 KB of YAML.
const (
	// MaxFileSize bounds one file (limit file-bytes): a fleet repository
	// holds small hand-written documents, and a stray large file must not
	// exhaust memory.
	MaxFileSize = 1 << 20
	// MaxRepositorySize is the default bound on the YAML files of a
	// repository together (limit repository-bytes; Options raises it):
	// some 6,000 channels, or 1,600 groups with windows and freezes; a
	// fleet of 1,000 channels and 1,000 groups is 450 KB. It loads in
	// well under a second on two cores in the costliest shape found,
	// every group invalid in every window (TestLoadRepositoryShapesStayBounded):
	// 640 KiB cost at most some 1.1 s of CPU, 0.6 s of wall time and
	// 35 MB. A larger limit costs in proportion: at worst some 1.7 s of
	// CPU (0.95 s of wall time on two cores) and 50 MB per MiB; 1.2 s of
	// CPU per MiB of valid documents.
	MaxRepositorySize = 640 << 10
	// MaxFiles bounds the YAML files of a repository (limit
	// files-per-repository): each costs a read and a parse however small.
	MaxFiles = 20_000
	// MaxFileTokens bounds the tokens of one file (limit file-tokens): every
	// run of characters that are neither white space nor one of the flow
	// indicators [ ] { } , counts one, and each flow indicator one. It
	// bounds the YAML nodes of a file (each takes a token or two), hence
	// the parser's memory, whatever the file's shape, and the schema's
	// work: 30,000 tokens are some 1,500 Channel documents.
	MaxFileTokens = 30_000
	// MaxDocuments bounds the documents of one file (limit documents-per-file).
	MaxDocuments = 2_000
	// MaxDocumentNodes bounds the YAML nodes (scalars, mappings, lists) of
	// one document, aliases expanded (limit nodes-per-document): the schema
	// is checked one document at a time, and CUE's work on a document's
	// errors grows with the square of their number. A group at the window
	// and freeze limits is some 3,000 nodes.
	MaxDocumentNodes = 4_000
	// MaxDepth bounds the nesting of mappings and lists in a document,
	// aliases expanded (limit nesting-depth); the deepest field of the
	// schema is at depth 6 (spec.rollout.stages[0].groups[0]).
	MaxDepth = 32
	// MaxAliasNodes bounds the nodes that aliases (*name) add to one file
	// when expanded (limit alias-nodes): aliases are expanded in place, so
	// a few lines of nested aliases could make billions of nodes.
	MaxAliasNodes = 10_000
	// MaxScalarBytes bounds one scalar, key or value (limit scalar-bytes):
	// names, versions and times are short, and errors quote values.
	MaxScalarBytes = 4096
	// MaxMappingKeys bounds the keys of one mapping (limit keys-per-mapping):
	// the widest mapping of the schema has seven, and CUE's work on a
	// mapping's unknown fields grows with the square of their number.
	MaxMappingKeys = 100
	// MaxEntries bounds the entries of any one list (limit
	// entries-per-collection), where no narrower limit applies: a rollout
	// stage of a thousand groups, say.
	MaxEntries = 1_000
	// MaxWindows bounds a group's spec.windows (limit windows-per-group).
	MaxWindows = 200
	// MaxFreezes bounds a group's spec.freezes (limit freezes-per-group).
	MaxFreezes = 200
	// MaxStages bounds a channel's spec.rollout.stages (limit stages-per-rollout).
	MaxStages = 100
	// MaxDays bounds a window's days (limit days-per-window): seven days,
	// each written at most twice.
	MaxDays = 14
)

// maxLimitErrors is how many limit errors one file reports: a file that
// breaks a limit tens of thousands of times says so a few times, not
// tens of thousands.
const maxLimitErrors = 10

// collectionLimits maps the location of a list in a document (keys joined
// by "/", list indexes written "*") to its limit and the limit's name.
var collectionLimits = map[string]struct {
	max  int
	name string
}{
	"spec/windows":        {MaxWindows, "windows-per-group"},
	"spec/freezes":        {MaxFreezes, "freezes-per-group"},
	"spec/rollout/stages": {MaxStages, "stages-per-rollout"},
	"spec/windows/*/days": {MaxDays, "days-per-window"},
}

// limitError is the message of a broken limit: what was found, the limit's
// name and value, and what to do.
func limitError(pos Position, what, name string, max int, todo string) Error {
	return Error{Pos: pos, Msg: fmt.Sprintf("%s (limit %s is %d); %s", what, name, max, todo)}
}

// lineCol is the 1-based line and byte column of offset off in data.
func lineCol(data []byte, off int) (line, col int) {
	line = 1 + bytes.Count(data[:off], []byte{'\n'})
	col = off - bytes.LastIndexByte(data[:off], '\n')
	return line, col
}

// prescan checks a file against the limits, and against what the loader
// refuses on sight (invalid UTF-8, merge keys), before CUE's decoder reads
// it; false means the file is refused and errs says why.
func prescan(name string, data []byte) (errs Errors, ok bool) {
	if off := invalidUTF8(data); off >= 0 {
		line, col := lineCol(data, off)
		return Errors{{Pos: Position{File: name, Line: line, Col: col},
			Msg: fmt.Sprintf("invalid UTF-8 (byte 0x%02x); YAML files must be UTF-8: save the file as UTF-8", data[off])}}, false
	}
	if n, off := countTokens(data, MaxFileTokens); n > MaxFileTokens {
		line, _ := lineCol(data, off)
		return Errors{limitError(Position{File: name, Line: line},
			fmt.Sprintf("file holds more than %d tokens", MaxFileTokens), "file-tokens", MaxFileTokens,
			"split it into several files")}, false
	}
	s := &scan{file: name, sizes: map[*yaml.Node]int{}, heights: map[*yaml.Node]int{}}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for docs := 0; ; docs++ {
		var n yaml.Node
		if err := dec.Decode(&n); err != nil {
			// io.EOF, or a syntax error, which CUE's decoder reports
			// again in its words; the rest of the file is not read.
			break
		}
		if docs == MaxDocuments {
			s.fail(limitError(s.pos(&n), fmt.Sprintf("file holds more than %d documents", MaxDocuments),
				"documents-per-file", MaxDocuments, "split it into several files"))
			break
		}
		s.docNodes = 0
		s.node(&n, 0, "")
		clear(s.sizes)
		clear(s.heights)
		if len(s.errs) >= maxLimitErrors {
			break
		}
	}
	return s.errs, len(s.errs) == 0
}

// invalidUTF8 is the offset of the first byte that is not UTF-8, or -1.
func invalidUTF8(data []byte) int {
	if utf8.Valid(data) {
		return -1
	}
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return -1
}

// countTokens counts tokens as MaxFileTokens defines them, stopping once
// the count passes max; off is where it did.
func countTokens(data []byte, max int) (n, off int) {
	inRun := false
	for i, c := range data {
		switch c {
		case ' ', '\t', '\n', '\r':
			inRun = false
			continue
		case '[', ']', '{', '}', ',':
			inRun = false
			n++
		default:
			if inRun {
				continue
			}
			inRun = true
			n++
		}
		if n > max {
			return n, i
		}
	}
	return n, len(data)
}

// scan walks the YAML nodes of one file's documents.
type scan struct {
	file       string
	aliasNodes int
	docNodes   int // of the document being walked
	errs       Errors
	// sizes and heights memoise, per document, the node count and height
	// of anchored nodes, so that nested aliases cost their anchors once.
	sizes, heights map[*yaml.Node]int
}

func (s *scan) pos(n *yaml.Node) Position {
	return Position{File: s.file, Line: n.Line, Col: n.Column}
}

func (s *scan) fail(e Error) {
	if len(s.errs) < maxLimitErrors {
		s.errs = append(s.errs, e)
	}
}

// node checks n at depth; at is its schema location ("spec/windows/*"),
// kept only as deep as collectionLimits reach.
func (s *scan) node(n *yaml.Node, depth int, at string) {
	if len(s.errs) >= maxLimitErrors || s.docNodes > MaxDocumentNodes {
		return
	}
	if n.Kind != yaml.DocumentNode {
		s.count(n, 1)
	}
	if depth > MaxDepth {
		s.fail(limitError(s.pos(n), fmt.Sprintf("mappings and lists nest more than %d levels deep", MaxDepth),
			"nesting-depth", MaxDepth, "flatten the document"))
		return
	}
	switch n.Kind {
	case yaml.ScalarNode:
		s.scalar(n)
	case yaml.DocumentNode:
		for _, c := range n.Content {
			s.node(c, depth, at)
		}
	case yaml.MappingNode:
		if keys := len(n.Content) / 2; keys > MaxMappingKeys {
			s.fail(limitError(s.pos(n), fmt.Sprintf("mapping has %d keys", keys),
				"keys-per-mapping", MaxMappingKeys, "remove the keys the schema does not know"))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind == yaml.ScalarNode {
				s.scalar(k)
			} else {
				s.node(k, depth+1, "") // a complex key: rare, but as deep as any value
			}
			if isMergeKey(k) {
				s.fail(Error{Pos: s.pos(k), Msg: "merge keys (<<) are not supported: tools disagree on what they mean, " +
					"so a review cannot tell which value is served; write the keys out, or use an alias (*name) for a whole value"})
				continue
			}
			s.node(v, depth+1, s.child(at, depth, k.Value))
		}
	case yaml.SequenceNode:
		s.length(n, len(n.Content), at)
		for _, c := range n.Content {
			s.node(c, depth+1, s.child(at, depth, "*"))
		}
	case yaml.AliasNode:
		target := n.Alias
		if target == nil {
			return
		}
		size := s.size(target)
		s.count(n, size-1) // the alias itself is counted
		s.aliasNodes += size
		if s.aliasNodes > MaxAliasNodes {
			s.fail(limitError(s.pos(n), fmt.Sprintf("aliases expand to more than %d nodes in this file", MaxAliasNodes),
				"alias-nodes", MaxAliasNodes, "write the values out, or use fewer aliases of large values"))
			s.aliasNodes = -1 << 62 // one such error per file
			return
		}
		if h := s.height(target); depth+h > MaxDepth {
			s.fail(limitError(s.pos(n), fmt.Sprintf("expanded, the alias *%s nests more than %d levels deep", n.Value, MaxDepth),
				"nesting-depth", MaxDepth, "flatten the anchored value"))
			return
		}
		if target.Kind == yaml.SequenceNode {
			s.length(n, len(target.Content), at)
		}
	}
}

// count adds k nodes, found at n, to the document's.
func (s *scan) count(n *yaml.Node, k int) {
	if s.docNodes += k; s.docNodes > MaxDocumentNodes {
		s.fail(limitError(s.pos(n), fmt.Sprintf("document holds more than %d YAML nodes (the limit is crossed here)", MaxDocumentNodes),
			"nodes-per-document", MaxDocumentNodes, "split it into several documents"))
	}
}

// scalar checks the length of a scalar.
func (s *scan) scalar(n *yaml.Node) {
	if len(n.Value) > MaxScalarBytes {
		s.fail(limitError(s.pos(n), fmt.Sprintf("scalar of %d bytes", len(n.Value)),
			"scalar-bytes", MaxScalarBytes, "no field of a fleet document takes so long a value: shorten it"))
	}
}

// child is the schema location of a child of the node at at, or "" below
// the depth collectionLimits reach.
func (s *scan) child(at string, depth int, key string) string {
	if depth >= 4 {
		return ""
	}
	if at == "" {
		return key
	}
	return at + "/" + key
}

// length checks a list of n entries at location at.
func (s *scan) length(node *yaml.Node, n int, at string) {
	lim, named := collectionLimits[at]
	if !named {
		lim.max, lim.name = MaxEntries, "entries-per-collection"
	}
	if n > lim.max {
		s.fail(limitError(s.pos(node), fmt.Sprintf("list has %d entries", n), lim.name, lim.max, "split the document"))
	}
}

// size is the number of nodes n expands to, aliases included.
func (s *scan) size(n *yaml.Node) int {
	if v, ok := s.sizes[n]; ok {
		return v
	}
	s.sizes[n] = 0 // an anchor that contains its own alias: CUE's decoder refuses it
	total := 1
	switch n.Kind {
	case yaml.AliasNode:
		if n.Alias != nil {
			total = s.size(n.Alias)
		}
	default:
		for _, c := range n.Content {
			total += s.size(c)
			if total > MaxAliasNodes {
				break // enough to refuse
			}
		}
	}
	s.sizes[n] = total
	return total
}

// height is how many levels of collections n holds, aliases expanded.
func (s *scan) height(n *yaml.Node) int {
	if v, ok := s.heights[n]; ok {
		return v
	}
	s.heights[n] = 0
	h := 0
	switch n.Kind {
	case yaml.AliasNode:
		if n.Alias != nil {
			h = s.height(n.Alias)
		}
	case yaml.MappingNode, yaml.SequenceNode:
		for _, c := range n.Content {
			h = max(h, s.height(c))
			if h > MaxDepth {
				break
			}
		}
		h++
	}
	s.heights[n] = h
	return h
}

// isMergeKey is yaml.v3's (and CUE's decoder's) test for the merge key:
// a "<<" that is plain or tagged !!merge; a quoted "<<" is a plain key.
func isMergeKey(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Value == "<<" && (n.Tag == "" || n.Tag == "!" || n.ShortTag() == "!!merge")
}
