package spec

import (
	"fmt"
	"slices"
	"strconv"

	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/literal"
	"cuelang.org/go/cue/token"

	"upkeep.dev/upkeep/schema"
)

// A document is one YAML document of a file, as CUE's YAML decoder extracts
// it. The same syntax tree feeds the schema check and the Go decoding, so
// both see the same values at the same positions (aliases already
// expanded; merge keys are refused before, see limits.go).
//
// Fields are looked up by path when asked (lookup), not indexed up front:
// an index keyed by path costs a string as long as the path for every node,
// which grows with depth times size, while the loader asks for a few paths
// per document and for the few that an error names.
type document struct {
	file  string
	kind  string // set once the envelope is read
	expr  ast.Expr
	start Position // of the document's first key
	errs  Errors   // problems found while reading the tree (duplicate keys)
	// duplicates counts repeated keys, of which errs holds the first few.
	duplicates int
	// problems are the document's schema and field-rule errors.
	problems Errors
	// name is metadata.name, when it is a string.
	name    string
	hasName bool
	// checked is set when the document passed the schema.
	checked bool
	// obj is the decoded *ControlPlane, *Channel or *Group, when the
	// document passed its own rules too.
	obj any
	// duplicate is set when an earlier document of the same kind has the
	// same name; the document is checked but left out of the State.
	duplicate bool
	// kept replaces expr once the document is checked (see compact): the
	// fields the rules between documents read, with their positions.
	kept      []keptField
	compacted bool
	// keptAt indexes kept by path when it is long (a rollout naming many
	// groups), so that a lookup stays constant time.
	keptAt map[string]int
}

// A keptField is one field of a compacted document: what str, boolean,
// length and at answer, in a few words (positions as int32, the file
// being the document's).
type keptField struct {
	path                       string
	keyLine, keyCol, line, col int32
	kind                       keptKind
	n                          int32  // a list's length
	s                          string // a string's value
}

type keptKind uint8

const (
	keptOther keptKind = iota // a scalar other than a string or boolean
	keptString
	keptTrue
	keptFalse
	keptMap
	keptSeq
)

// Markers standing for a compacted document's values in a field's expr:
// at tells collections from scalars by them.
var (
	keptMapping = &ast.StructLit{}
	keptList    = &ast.ListLit{}
	keptScalar  = &ast.BasicLit{}
)

// crossPaths are the fields that the rules between documents (rules.go)
// and the duplicate-name rule read after a document is checked, and their
// parents (for positions of absent fields, see enclosing); compact keeps
// these and drops the rest. Stages and their groups are kept too: see
// compact. A rule that reads another field must add it here.
var crossPaths = []string{
	"metadata", "metadata.name",
	"spec", "spec.channel", "spec.controlPlane", "spec.version", "spec.follow", "spec.default",
	"spec.rollout", "spec.rollout.stages",
}

// compact drops the document's syntax tree, keeping only crossPaths (and
// each rollout stage's groups): a load keeps every document until the
// rules between documents have run, and a syntax tree costs tens of bytes
// per byte of YAML, so a repository's memory would grow with its size
// rather than with its largest file.
func (d *document) compact() {
	if d.compacted {
		return
	}
	var kept []keptField
	keep := func(path string) {
		f, ok := d.lookup(path)
		if !ok {
			return
		}
		k := keptField{path: path, keyLine: int32(f.Key.Line), keyCol: int32(f.Key.Col), line: int32(f.Value.Line), col: int32(f.Value.Col)}
		switch x := f.expr.(type) {
		case *ast.StructLit:
			k.kind = keptMap
		case *ast.ListLit:
			k.kind, k.n = keptSeq, int32(len(x.Elts))
		default:
			if s, isStr := d.str(path); isStr {
				k.kind, k.s = keptString, s
			} else if b, isBool := d.boolean(path); isBool {
				k.kind = map[bool]keptKind{true: keptTrue, false: keptFalse}[b]
			}
		}
		kept = append(kept, k)
	}
	for _, p := range crossPaths {
		keep(p)
	}
	for i := range d.length("spec.rollout.stages") {
		stage := schema.IndexPath("spec.rollout.stages", i)
		keep(stage)
		groups := stage + ".groups"
		keep(groups)
		for j := range d.length(groups) {
			keep(schema.IndexPath(groups, j))
		}
	}
	d.expr, d.kept, d.compacted = nil, slices.Clone(kept), true
	if len(kept) > 16 {
		d.keptAt = make(map[string]int, len(kept))
		for i, k := range kept {
			d.keptAt[k.path] = i
		}
	}
}

// lookupKept is lookup on a compacted document.
func (d *document) lookupKept(path string) (keptField, bool) {
	if d.keptAt != nil {
		i, ok := d.keptAt[path]
		if !ok {
			return keptField{}, false
		}
		return d.kept[i], true
	}
	for _, k := range d.kept {
		if k.path == path {
			return k, true
		}
	}
	return keptField{}, false
}

// field is one value found by lookup: Key is where its key is written (for
// a list element, the element itself), Value where its value starts.
type field struct {
	Key, Value Position
	expr       ast.Expr
}

func newDocument(file string, expr ast.Expr) *document {
	d := &document{file: file, expr: expr}
	d.start = d.pos(expr.Pos())
	if s, ok := expr.(*ast.StructLit); ok {
		for _, el := range s.Elts {
			if f, ok := el.(*ast.Field); ok {
				d.start = d.pos(f.Label.Pos())
				break
			}
		}
	}
	var stack []step
	d.findDuplicates(expr, &stack)
	if more := d.duplicates - maxLimitErrors; more > 0 {
		d.errs = append(d.errs, Error{Pos: d.start, Msg: fmt.Sprintf("%d more duplicate keys in this document; remove them", more)})
	}
	return d
}

func (d *document) pos(p token.Pos) Position {
	if !p.IsValid() {
		return Position{File: d.file}
	}
	return Position{File: d.file, Line: p.Line(), Col: p.Column()}
}

// A step is one step of a path: a key, or a list index when isIdx.
type step struct {
	key   string
	idx   int
	isIdx bool
}

// pathOf renders steps as schema.KeyPath and schema.IndexPath do.
func pathOf(steps []step) string {
	p := ""
	for _, s := range steps {
		if s.isIdx {
			p = schema.IndexPath(p, s.idx)
		} else {
			p = schema.KeyPath(p, s.key)
		}
	}
	return p
}

// findDuplicates reports repeated keys, which YAML forbids and the YAML
// parser lets through. It visits each node once; the path of a node is
// built only for a repeat (stack holds the steps down to e).
func (d *document) findDuplicates(e ast.Expr, stack *[]step) {
	switch x := e.(type) {
	case *ast.StructLit:
		var seen map[string]*ast.Field
		if len(x.Elts) > 1 {
			seen = make(map[string]*ast.Field, len(x.Elts))
		}
		for _, el := range x.Elts {
			f, ok := el.(*ast.Field)
			if !ok {
				continue
			}
			name, _, err := ast.LabelName(f.Label)
			if err != nil {
				continue
			}
			*stack = append(*stack, step{key: name})
			if prev, dup := seen[name]; dup {
				// A few suffice, and each path may be long (keys of up to
				// MaxScalarBytes, MaxDepth deep): the rest are counted.
				if d.duplicates++; d.duplicates <= maxLimitErrors {
					d.errs = append(d.errs, Error{Pos: d.pos(f.Label.Pos()), Path: pathOf(*stack),
						Msg: fmt.Sprintf("duplicate key (first at line %d); remove one of them", prev.Label.Pos().Line())})
				}
			} else {
				if seen != nil {
					seen[name] = f
				}
				// As an index would, only the first of repeated keys is read.
				d.findDuplicates(f.Value, stack)
			}
			*stack = (*stack)[:len(*stack)-1]
		}
	case *ast.ListLit:
		for i, el := range x.Elts {
			*stack = append(*stack, step{idx: i, isIdx: true})
			d.findDuplicates(el, stack)
			*stack = (*stack)[:len(*stack)-1]
		}
	}
}

// parseSteps splits a path built by schema.KeyPath and schema.IndexPath
// ("spec.windows[0].start", `a["x.y"]`); ok is false for a malformed path.
func parseSteps(p string) (steps []step, ok bool) {
	for i := 0; i < len(p); {
		switch p[i] {
		case '.':
			i++
		case '[':
			if i+1 < len(p) && p[i+1] == '"' {
				q, err := strconv.QuotedPrefix(p[i+1:])
				if err != nil {
					return nil, false
				}
				key, _ := strconv.Unquote(q)
				i += 1 + len(q)
				if i >= len(p) || p[i] != ']' {
					return nil, false
				}
				i++
				steps = append(steps, step{key: key})
				continue
			}
			j := i + 1
			for j < len(p) && p[j] != ']' {
				j++
			}
			n, err := strconv.Atoi(p[i+1 : j])
			if err != nil || j >= len(p) {
				return nil, false
			}
			steps = append(steps, step{idx: n, isIdx: true})
			i = j + 1
		default:
			j := i
			for j < len(p) && p[j] != '.' && p[j] != '[' {
				j++
			}
			steps = append(steps, step{key: p[i:j]})
			i = j
		}
	}
	return steps, true
}

// lookup finds the value at path: a walk from the root, each mapping's
// keys scanned in order (the first of repeated keys wins).
func (d *document) lookup(path string) (field, bool) {
	if d.compacted {
		k, ok := d.lookupKept(path)
		if !ok {
			return field{}, false
		}
		f := field{Key: Position{File: d.file, Line: int(k.keyLine), Col: int(k.keyCol)},
			Value: Position{File: d.file, Line: int(k.line), Col: int(k.col)}, expr: keptScalar}
		switch k.kind {
		case keptMap:
			f.expr = keptMapping
		case keptSeq:
			f.expr = keptList
		}
		return f, true
	}
	steps, ok := parseSteps(path)
	if !ok || len(steps) == 0 {
		return field{}, false
	}
	e := d.expr
	var f field
	for _, s := range steps {
		switch x := e.(type) {
		case *ast.StructLit:
			if s.isIdx {
				return field{}, false
			}
			var found *ast.Field
			for _, el := range x.Elts {
				fl, ok := el.(*ast.Field)
				if !ok {
					continue
				}
				if name, _, err := ast.LabelName(fl.Label); err == nil && name == s.key {
					found = fl
					break
				}
			}
			if found == nil {
				return field{}, false
			}
			f = field{Key: d.pos(found.Label.Pos()), Value: d.pos(found.Value.Pos()), expr: found.Value}
		case *ast.ListLit:
			if !s.isIdx || s.idx < 0 || s.idx >= len(x.Elts) {
				return field{}, false
			}
			el := x.Elts[s.idx]
			at := d.pos(el.Pos())
			f = field{Key: at, Value: at, expr: el}
		default:
			return field{}, false
		}
		e = f.expr
	}
	return f, true
}

// at is the position to blame for path: a scalar's value, a mapping's or
// list's key; when path is absent, the key of the nearest enclosing field
// that is present, or else the document's start.
func (d *document) at(path string) Position {
	if f, ok := d.lookup(path); ok {
		switch f.expr.(type) {
		case *ast.StructLit, *ast.ListLit:
			return f.Key
		}
		return f.Value
	}
	return d.enclosing(path)
}

// enclosing is the key of the nearest present field that encloses path.
func (d *document) enclosing(path string) Position {
	for p := parentPath(path); p != ""; p = parentPath(p) {
		if f, ok := d.lookup(p); ok {
			return f.Key
		}
	}
	return d.start
}

// parentPath strips the last step of a path built by schema.KeyPath and
// schema.IndexPath ("spec.windows[0]" → "spec.windows"; `a["x.y"]` → "a").
func parentPath(p string) string {
	last := 0 // where the last step starts
	for i := 0; i < len(p); {
		switch p[i] {
		case '.':
			last = i
			i++
		case '[':
			last = i
			if i+1 < len(p) && p[i+1] == '"' {
				q, err := strconv.QuotedPrefix(p[i+1:])
				if err != nil {
					return p[:i]
				}
				i += 1 + len(q)
			}
			for i < len(p) && p[i] != ']' {
				i++
			}
			i++
		default:
			i++
		}
	}
	return p[:last]
}

// has reports whether path is present in the document.
func (d *document) has(path string) bool {
	_, ok := d.lookup(path)
	return ok
}

// str is the string at path; ok is false when it is absent or not a string.
func (d *document) str(path string) (s string, ok bool) {
	if d.compacted {
		k, present := d.lookupKept(path)
		return k.s, present && k.kind == keptString
	}
	f, present := d.lookup(path)
	if !present {
		return "", false
	}
	lit, isLit := f.expr.(*ast.BasicLit)
	if !isLit || lit.Kind != token.STRING {
		return "", false
	}
	s, err := literal.Unquote(lit.Value)
	return s, err == nil
}

// boolean is the boolean at path; ok is false when it is absent or not a boolean.
func (d *document) boolean(path string) (b, ok bool) {
	if d.compacted {
		k, present := d.lookupKept(path)
		return k.kind == keptTrue, present && (k.kind == keptTrue || k.kind == keptFalse)
	}
	f, present := d.lookup(path)
	if !present {
		return false, false
	}
	lit, isLit := f.expr.(*ast.BasicLit)
	if !isLit {
		return false, false
	}
	switch lit.Kind {
	case token.TRUE:
		return true, true
	case token.FALSE:
		return false, true
	}
	return false, false
}

// integer is the integer at path; err says why it does not fit an int.
func (d *document) integer(path string) (n int, present bool, err error) {
	f, present := d.lookup(path)
	if !present {
		return 0, false, nil
	}
	neg := false
	e := f.expr
	if u, ok := e.(*ast.UnaryExpr); ok && u.Op == token.SUB {
		neg, e = true, u.X
	}
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.INT {
		return 0, true, fmt.Errorf("not an integer")
	}
	v, err := strconv.ParseInt(lit.Value, 0, 0)
	if err != nil {
		return 0, true, fmt.Errorf("integer %s is out of range", lit.Value)
	}
	if neg {
		v = -v
	}
	return int(v), true, nil
}

// length is the number of elements of the list at path (0 when absent).
func (d *document) length(path string) int {
	if d.compacted {
		k, _ := d.lookupKept(path)
		return int(k.n)
	}
	f, ok := d.lookup(path)
	if !ok {
		return 0
	}
	if l, ok := f.expr.(*ast.ListLit); ok {
		return len(l.Elts)
	}
	return 0
}

// isEmpty reports a document with no content: an empty file, a bare "---",
// or an explicit null.
func isEmpty(e ast.Expr) bool {
	switch x := e.(type) {
	case nil:
		return true
	case *ast.BasicLit:
		return x.Kind == token.NULL
	case *ast.BinaryExpr:
		// The decoder's rendering of an empty input: *null | _
		return x.Op == token.OR
	}
	return false
}

// describeNode names what a non-mapping document is, for the error.
func describeNode(e ast.Expr) string {
	switch x := e.(type) {
	case *ast.ListLit:
		return "a list"
	case *ast.BasicLit:
		if x.Kind == token.STRING {
			return "a string"
		}
		return "the scalar " + x.Value
	}
	return "not a mapping"
}
