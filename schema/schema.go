// Package schema checks fleet-repository documents against the embedded CUE
// schema (upkeep.cue) and reports each violation with its field path and its
// line and column in the document's file.
package schema

import (
	_ "embed"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/cuecontext"
	"cuelang.org/go/cue/errors"
)

//go:embed upkeep.cue
var source string

// Source returns the CUE text of the schema, for documentation and tooling.
func Source() string { return source }

// Kinds are the document kinds the schema defines, one CUE definition each
// (#ControlPlane, #Channel, #Group).
var Kinds = []string{"ControlPlane", "Channel", "Group"}

// Violation is one way a document breaks the schema.
type Violation struct {
	// Path is the field inside the document, in the form KeyPath and
	// IndexPath build (for example "spec.windows[0].start").
	Path string
	// Line and Col locate the offending value in the document's file; both
	// are 0 when CUE names no place in the file, as for a missing field
	// (the caller then points at the nearest enclosing field).
	Line, Col int
	Msg       string
}

// compiled is the schema compiled in one CUE context. A CUE context is not
// safe for concurrent use, so each compiled schema is used by one goroutine
// at a time (see acquire).
type compiled struct {
	ctx  *cue.Context
	defs map[string]cue.Value // kind → definition
	// batches maps a kind to `{d0: #Kind, d1: #Kind, ...}` with BatchSize
	// fields, to check that many documents in one evaluation (see checkBatch).
	batches map[string]cue.Value
	*catalog
}

// catalog is what Go knows about the schema, read from it once and shared.
type catalog struct {
	// fields maps a schema location (kind, then keys, "*" for any list
	// index, joined by "/") to the fields allowed there, so that an unknown
	// field can be answered with the fields that are known.
	fields map[string][]string
	// wants maps a schema location to its @want text.
	wants map[string]string
}

func compile(cat *catalog) (*compiled, error) {
	ctx := cuecontext.New()
	// The batch definitions go after the schema, so that positions in the
	// schema's text stay as written.
	var src strings.Builder
	src.WriteString(source)
	for _, kind := range Kinds {
		fmt.Fprintf(&src, "\n_batch%s: {", kind)
		for j := range BatchSize {
			fmt.Fprintf(&src, "%s: #%s, ", batchLabel(j), kind)
		}
		src.WriteString("}\n")
	}
	v := ctx.CompileString(src.String(), cue.Filename("upkeep.cue"))
	if err := v.Err(); err != nil {
		return nil, fmt.Errorf("compile embedded schema: %w", err)
	}
	c := &compiled{ctx: ctx, defs: map[string]cue.Value{}, batches: map[string]cue.Value{}, catalog: cat}
	for _, kind := range Kinds {
		def := v.LookupPath(cue.MakePath(cue.Def(kind)))
		if err := def.Err(); err != nil {
			return nil, fmt.Errorf("embedded schema: definition #%s: %w", kind, err)
		}
		c.defs[kind] = def
		batch := v.LookupPath(cue.MakePath(cue.Hid("_batch"+kind, "_")))
		if err := batch.Err(); err != nil || !batch.Exists() {
			return nil, fmt.Errorf("embedded schema: batch of %s: %v", kind, err)
		}
		c.batches[kind] = batch
	}
	return c, nil
}

// first is the schema compiled once per process, with its catalog; it also
// proves the embedded schema compiles.
var first = sync.OnceValues(func() (*compiled, error) {
	c, err := compile(&catalog{fields: map[string][]string{}, wants: map[string]string{}})
	if err != nil {
		return nil, err
	}
	for _, kind := range Kinds {
		c.collectFields(kind, c.defs[kind])
	}
	return c, nil
})

// pool holds the compiled schemas not in use. Loads check files in
// parallel; each goroutine borrows its own, compiled on first need (a few
// milliseconds) and kept for the life of the process, so there are at most
// as many as goroutines ever checked at once.
var pool struct {
	sync.Mutex
	free  []*compiled
	ready bool
}

func acquire() (*compiled, error) {
	c0, err := first()
	if err != nil {
		return nil, err
	}
	pool.Lock()
	if !pool.ready {
		pool.free, pool.ready = append(pool.free, c0), true
	}
	if n := len(pool.free); n > 0 {
		c := pool.free[n-1]
		pool.free = pool.free[:n-1]
		pool.Unlock()
		return c, nil
	}
	pool.Unlock()
	return compile(c0.catalog)
}

func release(c *compiled) {
	pool.Lock()
	pool.free = append(pool.free, c)
	pool.Unlock()
}

// Ready compiles the schema if that has not happened yet and reports whether
// it compiles. Check calls it too; it exists so a server can fail at start.
func Ready() error {
	_, err := first()
	return err
}

func (c *compiled) collectFields(at string, v cue.Value) {
	switch v.IncompleteKind() {
	case cue.StructKind:
		it, err := v.Fields(cue.Optional(true))
		if err != nil {
			return
		}
		var names []string
		for it.Next() {
			name := it.Selector().Unquoted()
			names = append(names, name)
			fv := it.Value()
			if a := fv.Attribute("want"); a.Err() == nil {
				if text, err := a.String(0); err == nil {
					c.wants[at+"/"+name] = text
				}
				if each, found, err := a.Lookup(1, "each"); err == nil && found {
					c.wants[at+"/"+name+"/*"] = each
				}
			}
			c.collectFields(at+"/"+name, fv)
		}
		c.fields[at] = names
	case cue.ListKind:
		if elem := v.LookupPath(cue.MakePath(cue.AnyIndex)); elem.Exists() {
			c.collectFields(at+"/*", elem)
		}
	}
}

// A Document is one YAML document to check: its kind, the name of its
// file (the name its positions carry: it tells positions in the document
// from positions in the schema) and its syntax tree as
// cuelang.org/go/encoding/yaml extracts it.
type Document struct {
	Kind, Filename string
	Expr           ast.Expr
}

// Check validates one document against the definition of kind. See CheckAll.
func Check(kind, filename string, doc ast.Expr) ([]Violation, error) {
	vs, err := CheckAll([]Document{{kind, filename, doc}})
	if err != nil {
		return nil, err
	}
	return vs[0], nil
}

// BatchSize is how many documents CheckAll evaluates together. Checking
// documents in one evaluation saves much of the cost per document; beyond
// a few dozen it gains nothing more.
const BatchSize = 64

// CheckAll validates documents against the definitions of their kinds and
// returns the violations of docs[i] at index i (nil when it is valid). The
// error reports a kind the schema does not define or a schema that does not
// compile, never a problem with a document. CheckAll is safe for
// concurrent use.
func CheckAll(docs []Document) ([][]Violation, error) {
	byKind := map[string][]int{}
	for i, d := range docs {
		if !slices.Contains(Kinds, d.Kind) {
			return nil, fmt.Errorf("schema defines no kind %q", d.Kind)
		}
		byKind[d.Kind] = append(byKind[d.Kind], i)
	}
	c, err := acquire()
	if err != nil {
		return nil, err
	}
	done := false
	defer func() {
		// A context that panicked mid-evaluation is dropped, not reused.
		if done {
			release(c)
		}
	}()
	out := make([][]Violation, len(docs))
	for _, kind := range Kinds {
		idx := byKind[kind]
		for len(idx) > 0 {
			n := min(len(idx), BatchSize)
			c.checkBatch(kind, docs, idx[:n], out)
			idx = idx[n:]
		}
	}
	done = true
	return out, nil
}

// checkBatch checks docs[idx...], all of kind. A valid repository is the
// common case, so a full batch is first evaluated at once: the documents
// become the fields d0, d1, ... of one struct, unified with the batch
// definition `{d0: #Kind, d1: #Kind, ...}`, so that each field is what a
// lone check evaluates and the whole is valid exactly when each document is.
// Otherwise the documents are checked one by one: CUE reports some errors
// (an unknown field) only when the evaluation holds no other error, so a
// shared evaluation would let one document's errors hide another's.
//
// Building `{d0: #Kind & doc0, ...}` in the schema's scope (cue.Scope)
// instead looks equivalent but is not: the definitions are not closed, and
// unknown fields pass. TestCheckAllCatchesOneBadDocumentInAFullBatch guards
// against such a change.
func (c *compiled) checkBatch(kind string, docs []Document, idx []int, out [][]Violation) {
	if len(idx) == BatchSize {
		fields := make([]any, 0, 2*len(idx))
		for j, i := range idx {
			fields = append(fields, batchLabel(j), docs[i].Expr)
		}
		data := c.ctx.BuildExpr(ast.NewStruct(fields...))
		if data.Err() == nil && c.batches[kind].Unify(data).Validate(cue.Concrete(true), cue.All()) == nil {
			batchesPassed.Add(1)
			return
		}
	}
	for _, i := range idx {
		data := c.ctx.BuildExpr(docs[i].Expr)
		err := data.Err()
		if err == nil {
			err = c.defs[kind].Unify(data).Validate(cue.Concrete(true), cue.All())
		}
		if err != nil {
			// A build error (the decoder produced something CUE cannot
			// build; it should not) is reported against the document too.
			out[i] = c.violations(kind, docs[i].Filename, data, err)
		}
	}
}

func batchLabel(j int) string { return "d" + strconv.Itoa(j) }

// batchesPassed counts batches found valid in one evaluation, for tests.
var batchesPassed atomic.Int64

// violations converts the errors of one document checked alone. Their
// paths start with the definition ("#Channel"), which pathSegments drops.
func (c *compiled) violations(kind, filename string, data cue.Value, err error) []Violation {
	var out []Violation
	for _, e := range errors.Errors(err) {
		segs := pathSegments(e.Path())
		format, args := e.Msg()
		msg := fmt.Sprintf(format, args...)
		if strings.HasSuffix(msg, "errors in empty disjunction:") {
			// The branches are reported on their own; this line adds nothing.
			continue
		}
		v := Violation{Path: formatPath(segs), Msg: c.explain(kind, segs, data, msg)}
		for _, pos := range errors.Positions(e) {
			if pos.Filename() == filename {
				v.Line, v.Col = pos.Line(), pos.Column()
				break
			}
		}
		out = append(out, v)
	}
	return dedupe(out)
}

// dedupe drops repeats: CUE may report one conflict once per conjunct.
func dedupe(vs []Violation) []Violation {
	seen := make(map[Violation]bool, len(vs))
	out := vs[:0]
	for _, v := range vs {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

var mismatchedTypes = regexp.MustCompile(`\(mismatched types (\w+) and (\w+)\)$`)

// explain turns CUE's wording into the user's: what was found and what is
// wanted, in YAML terms.
func (c *compiled) explain(kind string, segs []segment, data cue.Value, msg string) string {
	got := data.LookupPath(cuePath(segs))
	switch {
	case msg == "field not allowed":
		allowed := c.fields[schemaLocation(kind, segs[:max(len(segs)-1, 0)])]
		if len(allowed) == 0 {
			return "unknown field"
		}
		return "unknown field; allowed here: " + strings.Join(allowed, ", ")
	case msg == "field is required but not present":
		return "required field is missing"
	}
	if want, ok := c.wants[schemaLocation(kind, segs)]; ok {
		if got.Exists() {
			return "got " + describe(got) + "; want " + want
		}
		return "want " + want
	}
	if m := mismatchedTypes.FindStringSubmatch(msg); m != nil && got.Exists() {
		want := m[1]
		if want == kindName(got.Kind()) {
			want = m[2]
		}
		return "got " + describe(got) + "; want " + article(yamlKind(want))
	}
	if strings.HasPrefix(msg, "conflicting values ") && got.Exists() {
		return "got " + describe(got) + "; " + msg
	}
	return msg
}

// describe renders a document value briefly: scalars as written, collections by kind.
func describe(v cue.Value) string {
	switch v.Kind() {
	case cue.StringKind:
		s, _ := v.String()
		if len(s) > 60 {
			s = s[:57] + "..."
		}
		return strconv.Quote(s)
	case cue.StructKind:
		return "a mapping"
	case cue.ListKind:
		return "a list"
	case cue.BottomKind:
		return "an invalid value"
	}
	return fmt.Sprint(v)
}

func kindName(k cue.Kind) string {
	switch k {
	case cue.StructKind:
		return "struct"
	case cue.ListKind:
		return "list"
	}
	return k.String()
}

func yamlKind(cueKind string) string {
	switch cueKind {
	case "struct":
		return "mapping"
	case "int":
		return "integer"
	case "float", "number":
		return "number"
	case "bool":
		return "boolean (true or false)"
	}
	return cueKind
}

func article(noun string) string {
	if noun != "" && strings.ContainsRune("aeiou", rune(noun[0])) {
		return "an " + noun
	}
	return "a " + noun
}

// A segment is one step of a field path: a map key or a list index.
type segment struct {
	key   string
	index int // when isIndex
	isIdx bool
}

// pathSegments converts a CUE error path. CUE quotes labels that are not
// identifiers ("\"0\"") and writes list indexes bare ("0"); the leading
// definition ("#Channel") is the schema's, not the document's.
func pathSegments(p []string) []segment {
	var out []segment
	for i, s := range p {
		switch {
		case i == 0 && strings.HasPrefix(s, "#"):
			continue
		case strings.HasPrefix(s, `"`):
			if u, err := strconv.Unquote(s); err == nil {
				s = u
			}
			out = append(out, segment{key: s})
		case isDigits(s):
			n, err := strconv.Atoi(s)
			if err != nil {
				out = append(out, segment{key: s})
				continue
			}
			out = append(out, segment{index: n, isIdx: true})
		default:
			out = append(out, segment{key: s})
		}
	}
	return out
}

func isDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

func formatPath(segs []segment) string {
	var p string
	for _, s := range segs {
		if s.isIdx {
			p = IndexPath(p, s.index)
		} else {
			p = KeyPath(p, s.key)
		}
	}
	return p
}

func cuePath(segs []segment) cue.Path {
	sels := make([]cue.Selector, len(segs))
	for i, s := range segs {
		if s.isIdx {
			sels[i] = cue.Index(s.index)
		} else {
			sels[i] = cue.Str(s.key)
		}
	}
	return cue.MakePath(sels...)
}

func schemaLocation(kind string, segs []segment) string {
	parts := []string{kind}
	for _, s := range segs {
		if s.isIdx {
			parts = append(parts, "*")
		} else {
			parts = append(parts, s.key)
		}
	}
	return strings.Join(parts, "/")
}

var plainKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

// KeyPath is the path of map key key inside the field at parent ("" for the
// document): "spec" + "version" = "spec.version"; keys that are not plain
// words are quoted: `spec["a b"]`.
func KeyPath(parent, key string) string {
	if !plainKey.MatchString(key) {
		return parent + "[" + strconv.Quote(key) + "]"
	}
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// IndexPath is the path of list element i inside the field at parent:
// "spec.windows" + 0 = "spec.windows[0]".
func IndexPath(parent string, i int) string {
	return parent + "[" + strconv.Itoa(i) + "]"
}

// Fields lists the fields the schema allows at a location of a kind, for
// example Fields("Group", "spec", "windows", "*"); nil when none are known.
func Fields(kind string, location ...string) []string {
	c, err := first()
	if err != nil {
		return nil
	}
	return slices.Clone(c.fields[strings.Join(append([]string{kind}, location...), "/")])
}
