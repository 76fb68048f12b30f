package spec

import (
	"fmt"
	"strconv"

	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/literal"
	"cuelang.org/go/cue/token"

	"upkeep.dev/upkeep/schema"
)

// A document is one YAML document of a file, as CUE's YAML decoder extracts
// it, with every field indexed by its path. The same syntax tree feeds the
// schema check and the Go decoding, so both see the same values at the same
// positions (aliases and merge keys already expanded).
type document struct {
	file   string
	kind   string // set once the envelope is read
	expr   ast.Expr
	start  Position         // of the document's first key
	fields map[string]field // "spec.windows[0].start" → field
	errs   Errors           // problems found while indexing (duplicate keys)
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
}

// field is one indexed value: Key is where its key is written (for a list
// element, the element itself), Value where its value starts.
type field struct {
	Key, Value Position
	expr       ast.Expr
}

func newDocument(file string, expr ast.Expr) *document {
	d := &document{file: file, expr: expr, fields: map[string]field{}}
	d.start = d.pos(expr.Pos())
	if s, ok := expr.(*ast.StructLit); ok {
		for _, el := range s.Elts {
			if f, ok := el.(*ast.Field); ok {
				d.start = d.pos(f.Label.Pos())
				break
			}
		}
	}
	d.index("", expr)
	return d
}

func (d *document) pos(p token.Pos) Position {
	if !p.IsValid() {
		return Position{File: d.file}
	}
	return Position{File: d.file, Line: p.Line(), Col: p.Column()}
}

func (d *document) index(parent string, e ast.Expr) {
	switch x := e.(type) {
	case *ast.StructLit:
		for _, el := range x.Elts {
			f, ok := el.(*ast.Field)
			if !ok {
				continue
			}
			name, _, err := ast.LabelName(f.Label)
			if err != nil {
				continue
			}
			p := schema.KeyPath(parent, name)
			if prev, dup := d.fields[p]; dup {
				// YAML forbids repeated keys; the YAML parser lets them through.
				d.errs = append(d.errs, Error{Pos: d.pos(f.Label.Pos()), Path: p,
					Msg: fmt.Sprintf("duplicate key (first at line %d); remove one of them", prev.Key.Line)})
				continue
			}
			d.fields[p] = field{Key: d.pos(f.Label.Pos()), Value: d.pos(f.Value.Pos()), expr: f.Value}
			d.index(p, f.Value)
		}
	case *ast.ListLit:
		for i, el := range x.Elts {
			p := schema.IndexPath(parent, i)
			at := d.pos(el.Pos())
			d.fields[p] = field{Key: at, Value: at, expr: el}
			d.index(p, el)
		}
	}
}

// at is the position to blame for path: a scalar's value, a mapping's or
// list's key; when path is absent, the key of the nearest enclosing field
// that is present, or else the document's start.
func (d *document) at(path string) Position {
	if f, ok := d.fields[path]; ok {
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
		if f, ok := d.fields[p]; ok {
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
	_, ok := d.fields[path]
	return ok
}

// str is the string at path; ok is false when it is absent or not a string.
func (d *document) str(path string) (s string, ok bool) {
	f, present := d.fields[path]
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
	f, present := d.fields[path]
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
	f, present := d.fields[path]
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
	f, ok := d.fields[path]
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
