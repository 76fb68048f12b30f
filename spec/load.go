package spec

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"cuelang.org/go/cue/ast"
	cueyaml "cuelang.org/go/encoding/yaml"
	"github.com/go-git/go-git/v5/plumbing/format/gitignore"

	"upkeep.dev/upkeep/schema"
)

// IgnoreFile, at the repository root, lists paths (gitignore syntax) that
// Load skips.
const IgnoreFile = ".upkeepignore"

// LoadDir loads the fleet repository in directory dir. See Load.
func LoadDir(dir string) (*State, Errors) { return LoadDirWith(dir, Options{}) }

// LoadDirWith is LoadDir with limits other than the defaults.
func LoadDirWith(dir string, o Options) (*State, Errors) {
	if fi, err := os.Stat(dir); err != nil {
		return &State{}, Errors{{Pos: Position{File: dir}, Msg: fmt.Sprintf("cannot read the fleet repository: %v", err)}}
	} else if !fi.IsDir() {
		return &State{}, Errors{{Pos: Position{File: dir}, Msg: "not a directory; give the root folder of the fleet repository"}}
	}
	// Through an os.Root, a symbolic link is followed only while it stays
	// inside dir: nothing outside the repository is read, as with sources.
	root, err := os.OpenRoot(dir)
	if err != nil {
		return &State{}, Errors{{Pos: Position{File: dir}, Msg: fmt.Sprintf("cannot read the fleet repository: %v", err)}}
	}
	defer root.Close()
	return LoadWith(root.FS(), o)
}

// Options are the limits of a load that an operator may change; the zero
// value is the defaults.
type Options struct {
	// MaxRepositoryBytes bounds the YAML files of the repository together
	// (limit repository-bytes); 0 (or less) is MaxRepositorySize. Raising
	// it lets a load take time and memory in proportion: see
	// MaxRepositorySize for the cost per MiB.
	MaxRepositoryBytes int
}

// Load is LoadWith(fsys, o), as a reconcile.LoadFunc.
func (o Options) Load(fsys fs.FS) (*State, Errors) { return LoadWith(fsys, o) }

func (o Options) maxRepositoryBytes() int {
	if o.MaxRepositoryBytes <= 0 {
		return MaxRepositorySize
	}
	return o.MaxRepositoryBytes
}

// Load reads every YAML document of the fleet repository fsys, checks each
// against the schema and all of them against each other, and returns the
// desired state. Errors is nil when the repository is valid; otherwise it
// holds every problem found, sorted. The State is returned either way:
// documents that break the schema or their own field rules are left out, so
// a caller (diff) can still compare what is left; a valid State has all.
func Load(fsys fs.FS) (*State, Errors) { return LoadWith(fsys, Options{}) }

// LoadWith is Load with limits other than the defaults.
func LoadWith(fsys fs.FS, o Options) (*State, Errors) {
	l := newLoader()
	files := l.walk(fsys, o.maxRepositoryBytes())
	ck := &checker{zones: &zones{}}
	// A window of files at a time is parsed and checked, and each
	// document's syntax tree dropped before the next window but one
	// (compact), so that memory follows the window, not the repository.
	// The next window is parsed while one is checked: a window may be a
	// single file, whose parse is sequential. Results do not depend on the
	// windows: a document's checks read that document alone, and merge
	// keeps walk order.
	windows := make(chan []*parsedFile) // unbuffered: at most two windows parsed ahead of compact
	go func() {
		defer close(windows)
		for len(files) > 0 {
			n, window := 0, 0
			for n < len(files) && (n == 0 || window+len(files[n].data) <= windowBytes) {
				window += len(files[n].data)
				n++
			}
			parsed := parseFiles(files[:n])
			clear(files[:n]) // the data is parsed: let it go
			files = files[n:]
			windows <- parsed
		}
	}()
	defer func() {
		for range windows { // on a panic below, let the parser finish rather than leak
		}
	}()
	for parsed := range windows {
		ck.checkDocuments(parsed)
		for _, pf := range parsed {
			for _, d := range pf.docs {
				d.compact()
			}
			l.merge(pf)
		}
	}
	l.crossCheck()
	return l.state(), l.errors()
}

// windowBytes is how much YAML Load parses and checks at a time: enough
// documents to fill the schema's batches on every core, few enough that
// their syntax trees (tens of bytes per byte) stay small beside the limit
// on memory.
const windowBytes = 256 << 10

// sourceFile is one YAML file of the repository.
type sourceFile struct {
	name string
	data []byte
}

// walk lists the repository's YAML files in lexical order, so "first" and
// "second" (for duplicate names) are stable.
func (l *loader) walk(fsys fs.FS, maxBytes int) []sourceFile {
	ignore, err := readIgnore(fsys)
	if err != nil {
		l.errs = append(l.errs, Error{Pos: Position{File: IgnoreFile}, Msg: err.Error()})
	}
	var files []sourceFile
	total, nfiles := 0, 0 // bytes and files read, for repository-bytes and files-per-repository
	err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			l.errs = append(l.errs, Error{Pos: Position{File: p}, Msg: fmt.Sprintf("cannot read: %v", unwrapPathError(err))})
			if d != nil && d.IsDir() && p != "." {
				return fs.SkipDir
			}
			return nil
		}
		if p == "." {
			return nil
		}
		name := d.Name()
		if d.IsDir() {
			if strings.HasPrefix(name, ".") || ignore.Match(strings.Split(p, "/"), true) {
				return fs.SkipDir
			}
			return nil
		}
		if !isYAML(name) || ignore.Match(strings.Split(p, "/"), false) {
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			// A link is read as the file it names only inside the
			// repository: LoadDir reads through an os.Root and a Git tree
			// resolves links within itself, so a link that leaves the
			// repository (or is absolute, dangles or loops) fails to Stat,
			// and nothing outside is ever read or quoted.
			fi, err := fs.Stat(fsys, p)
			if err != nil {
				l.errs = append(l.errs, Error{Pos: Position{File: p},
					Msg: "is a symbolic link that leaves the repository, is absolute, dangles or loops; nothing outside the repository root is read: copy the file in, link to a file inside with a relative link, or list it in " + IgnoreFile})
				return nil
			}
			if !fi.Mode().IsRegular() {
				return nil
			}
		} else if !d.Type().IsRegular() {
			return nil
		}
		if nfiles++; nfiles > MaxFiles {
			l.errs = append(l.errs, limitError(Position{File: p},
				fmt.Sprintf("the repository holds more than %d YAML files", MaxFiles),
				"files-per-repository", MaxFiles, "this and later files are not read; merge small files, or list files that are not fleet state in "+IgnoreFile))
			return fs.SkipAll
		}
		data, err := readFile(fsys, p)
		if err != nil {
			l.errs = append(l.errs, Error{Pos: Position{File: p}, Msg: err.Error()})
			return nil
		}
		if total += len(data); total > maxBytes {
			// The files before are kept: their errors still help.
			l.errs = append(l.errs, limitError(Position{File: p},
				fmt.Sprintf("the repository's YAML files, up to this one, hold more than %s", formatBytes(maxBytes)),
				"repository-bytes", maxBytes, "this and later files are not read; list files that are not fleet state in "+IgnoreFile+
					", or raise the limit (--max-repository-bytes) knowing that a load takes time and memory in proportion"))
			return fs.SkipAll
		}
		files = append(files, sourceFile{p, data})
		return nil
	})
	if err != nil {
		l.errs = append(l.errs, Error{Pos: Position{File: "."}, Msg: fmt.Sprintf("cannot walk the repository: %v", err)})
	}
	return files
}

// formatBytes renders a size limit: in MiB or KiB when it is a whole number of them.
func formatBytes(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// parallel runs work(i) for i in [0, n) on GOMAXPROCS goroutines.
func parallel(n int, work func(i int)) {
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), n) {
		wg.Go(func() {
			for i := range next {
				work(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// parsedFile is one file's documents (those of a known kind) and the
// problems of the file itself or of documents without a known kind.
type parsedFile struct {
	docs []*document
	errs Errors
}

// parseFiles parses files in parallel, keeping their order.
func parseFiles(files []sourceFile) []*parsedFile {
	out := make([]*parsedFile, len(files))
	parallel(len(files), func(i int) {
		pf := &parsedFile{}
		pf.file(files[i].name, files[i].data)
		out[i] = pf
	})
	return out
}

// checkDocuments checks every document against the schema, then against
// its own field rules. The schema check dominates a load; it runs in
// batches of one kind (schema.CheckAll evaluates a batch at once), the
// batches in parallel.
func (ck *checker) checkDocuments(files []*parsedFile) {
	byKind := map[string][]*document{}
	for _, pf := range files {
		for _, d := range pf.docs {
			byKind[d.kind] = append(byKind[d.kind], d)
		}
	}
	// Chunks of one kind, so that full batches line up.
	var chunks [][]*document
	for _, kind := range schema.Kinds {
		docs := byKind[kind]
		for len(docs) > 0 {
			n := min(len(docs), schema.BatchSize)
			chunks = append(chunks, docs[:n])
			docs = docs[n:]
		}
	}
	parallel(len(chunks), func(i int) { ck.checkChunk(chunks[i]) })
}

// checker applies the schema and the field rules; it is shared by the
// goroutines of checkDocuments and writes only to the documents it is given.
type checker struct {
	zones *zones
	// failing is set, per kind, while the last chunk of that kind held a
	// document that broke the schema. schema.CheckAll first evaluates a
	// full batch at once and, when it fails, checks its documents one by
	// one: where invalid documents are common that first evaluation is
	// wasted, so a failing kind's chunks are handed over in halves, which
	// CheckAll checks one by one straight away. A chunk that passes
	// clears it. It changes the cost only: CheckAll's answers do not
	// depend on how documents are batched.
	failing sync.Map // kind → bool
}

func (ck *checker) checkChunk(docs []*document) {
	defer func() {
		// As in parsedFile.file: a panic becomes an error, not a crash.
		if r := recover(); r != nil {
			for _, d := range docs {
				d.checked, d.obj = false, nil
				d.problems = append(d.problems, Error{Pos: d.start,
					Msg: fmt.Sprintf("%s: %v; please report this with the file", internalError, r)})
			}
		}
	}()
	in := make([]schema.Document, len(docs))
	for i, d := range docs {
		in[i] = schema.Document{Kind: d.kind, Filename: d.file, Expr: d.expr}
	}
	var violations [][]schema.Violation
	var err error
	kind := docs[0].kind
	if failing, _ := ck.failing.Load(kind); failing == true && len(in) == schema.BatchSize {
		half := len(in) / 2
		violations, err = schema.CheckAll(in[:half])
		if err == nil {
			var rest [][]schema.Violation
			rest, err = schema.CheckAll(in[half:])
			violations = append(violations, rest...)
		}
	} else {
		violations, err = schema.CheckAll(in)
	}
	ck.failing.Store(kind, slices.ContainsFunc(violations, func(v []schema.Violation) bool { return len(v) > 0 }))
	if err != nil {
		// The embedded schema is broken: a bug, not a problem of the repository.
		for _, d := range docs {
			d.problems = append(d.problems, Error{Pos: d.start, Msg: fmt.Sprintf("%s: %v", internalError, err)})
		}
		return
	}
	for i, d := range docs {
		for _, v := range violations[i] {
			pos := Position{File: d.file, Line: v.Line, Col: v.Col}
			if v.Line == 0 {
				pos = d.at(v.Path)
			}
			d.problems = append(d.problems, Error{Pos: pos, Path: v.Path, Msg: v.Msg})
		}
		if len(violations[i]) > 0 {
			continue
		}
		d.checked = true
		switch d.kind {
		case KindControlPlane:
			ck.controlPlane(d)
		case KindChannel:
			ck.channel(d)
		case KindGroup:
			ck.group(d)
		}
	}
}

// merge takes one file's results into the load, in walk order: names are
// registered here, so that the first of two documents with one name is the
// first in the walk.
func (l *loader) merge(pf *parsedFile) {
	l.errs = append(l.errs, pf.errs...)
	for _, d := range pf.docs {
		l.errs = append(l.errs, d.problems...)
		if d.hasName {
			l.seen(d.kind, d.name, d)
		}
		if d.checked {
			l.checked = append(l.checked, d)
		}
		if d.obj == nil || d.duplicate {
			continue
		}
		switch o := d.obj.(type) {
		case *ControlPlane:
			l.controlPlanes = append(l.controlPlanes, o)
		case *Channel:
			l.channels = append(l.channels, o)
		case *Group:
			l.groups = append(l.groups, o)
		}
		l.docs[d.obj] = d
	}
}

// fail records a problem at path of d and returns false, for `ok = ck.fail(...)`.
func (ck *checker) fail(d *document, path, msg string) bool {
	d.problems = append(d.problems, Error{Pos: d.at(path), Path: path, Msg: msg})
	return false
}

func isYAML(name string) bool {
	ext := path.Ext(name)
	return ext == ".yaml" || ext == ".yml"
}

func readFile(fsys fs.FS, p string) ([]byte, error) {
	f, err := fsys.Open(p)
	if err != nil {
		return nil, fmt.Errorf("cannot read: %v", unwrapPathError(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read: %v", unwrapPathError(err))
	}
	if len(data) > MaxFileSize {
		return nil, errors.New(limitError(Position{}, fmt.Sprintf("file is larger than %d MiB", MaxFileSize>>20), "file-bytes", MaxFileSize,
			"split it, or list it in "+IgnoreFile+" if it is not fleet state").Msg)
	}
	return data, nil
}

// unwrapPathError drops the path an fs.PathError repeats: the error's
// position names the file already.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// noIgnore matches nothing.
type noIgnore struct{}

func (noIgnore) Match([]string, bool) bool { return false }

func readIgnore(fsys fs.FS) (gitignore.Matcher, error) {
	data, err := fs.ReadFile(fsys, IgnoreFile)
	if errors.Is(err, fs.ErrNotExist) {
		return noIgnore{}, nil
	}
	if err != nil {
		return noIgnore{}, fmt.Errorf("cannot read: %v", unwrapPathError(err))
	}
	var ps []gitignore.Pattern
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		ps = append(ps, gitignore.ParsePattern(line, nil))
	}
	if err := sc.Err(); err != nil {
		return noIgnore{}, fmt.Errorf("cannot read: %v", err)
	}
	return gitignore.NewMatcher(ps), nil
}

// file reads every document of one file.
func (pf *parsedFile) file(name string, data []byte) {
	defer func() {
		// The YAML and CUE libraries are fed untrusted input; a panic in
		// them must not take down a server. It becomes an error naming the
		// file, and tests (FuzzLoad) treat it as a failure.
		if r := recover(); r != nil {
			pf.errs = append(pf.errs, Error{Pos: Position{File: name},
				Msg: fmt.Sprintf("%s: %v; the file cannot be read, please report this with the file", internalError, r)})
		}
	}()
	data = normalizeNewlines(data)
	if errs, ok := prescan(name, data); !ok {
		pf.errs = append(pf.errs, errs...)
		return
	}
	dec := cueyaml.NewDecoder(name, bytes.NewReader(data))
	var last string
	for {
		expr, err := dec.Extract()
		if err == io.EOF {
			return
		}
		if err != nil {
			if err.Error() == last {
				// A syntax error repeats on every call: the parser cannot
				// resynchronise, so the rest of the file is unknown.
				return
			}
			last = err.Error()
			// Other errors (an unsupported tag, say) concern one document;
			// the next one is still read.
			pf.errs = append(pf.errs, yamlError(name, err))
			continue
		}
		pf.document(newDocument(name, expr))
	}
}

// internalError starts the message of an error that is upkeep's fault (or
// its libraries'), not the repository's.
const internalError = "internal error"

// normalizeNewlines turns CRLF and lone CR line breaks into LF. YAML treats
// all three as line breaks (and folds them to LF inside scalars anyway),
// but CUE's position table only counts LF, and panics on lone CRs.
func normalizeNewlines(data []byte) []byte {
	if !bytes.ContainsRune(data, '\r') {
		return data
	}
	data = bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))
	return bytes.ReplaceAll(data, []byte("\r"), []byte("\n"))
}

// The YAML decoder's errors are text, "FILE:LINE: message" or "FILE: message".
var yamlLine = regexp.MustCompile(`^(\d+): (.*)$`)

func yamlError(name string, err error) Error {
	msg, _ := strings.CutPrefix(err.Error(), name+":")
	msg = strings.TrimSpace(msg)
	pos := Position{File: name}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		pos.Line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	return Error{Pos: pos, Msg: "invalid YAML: " + msg}
}

// document checks one document's envelope (apiVersion, kind) and keeps it
// for checkDocuments when its kind is known.
func (pf *parsedFile) document(d *document) {
	if isEmpty(d.expr) {
		return
	}
	if _, ok := d.expr.(*ast.StructLit); !ok {
		pf.errs = append(pf.errs, Error{Pos: d.start,
			Msg: fmt.Sprintf("document is %s; want a mapping with apiVersion, kind, metadata and spec", describeNode(d.expr))})
		return
	}
	kind, errs := envelope(d)
	pf.errs = append(pf.errs, errs...)
	if kind == "" {
		return
	}
	d.kind = kind
	if len(d.errs) > 0 {
		// Repeated keys make the document ambiguous, and CUE would add a
		// conflict for each: report the repeats alone.
		pf.errs = append(pf.errs, d.errs...)
		return
	}
	d.name, d.hasName = d.str("metadata.name")
	pf.docs = append(pf.docs, d)
}

// envelope checks apiVersion and kind before the schema: without a known
// kind there is no definition to check against. kind is "" when either is
// wrong.
func envelope(d *document) (kind string, errs Errors) {
	switch v, isStr := d.str("apiVersion"); {
	case !d.has("apiVersion"):
		errs = append(errs, Error{Pos: d.start, Path: "apiVersion", Msg: "missing apiVersion; add apiVersion: " + APIVersion})
	case !isStr || v != APIVersion:
		errs = append(errs, Error{Pos: d.at("apiVersion"), Path: "apiVersion",
			Msg: fmt.Sprintf("unsupported apiVersion %s; want %s", quoteValue(d, "apiVersion"), APIVersion)})
	}
	kinds := strings.Join(schema.Kinds, ", ")
	switch v, isStr := d.str("kind"); {
	case !d.has("kind"):
		errs = append(errs, Error{Pos: d.start, Path: "kind", Msg: "missing kind; want one of " + kinds})
	case !isStr || !isKind(v):
		msg := fmt.Sprintf("unknown kind %s; want one of %s", quoteValue(d, "kind"), kinds)
		for _, k := range schema.Kinds {
			if strings.EqualFold(k, v) {
				msg = fmt.Sprintf("unknown kind %q; did you mean %s?", v, k)
			}
		}
		errs = append(errs, Error{Pos: d.at("kind"), Path: "kind", Msg: msg})
	case len(errs) == 0:
		kind = v
	}
	return kind, errs
}

func isKind(k string) bool {
	for _, known := range schema.Kinds {
		if k == known {
			return true
		}
	}
	return false
}

// quoteValue renders the scalar at path for a message.
func quoteValue(d *document, path string) string {
	if s, ok := d.str(path); ok {
		return strconv.Quote(s)
	}
	if f, ok := d.lookup(path); ok {
		switch f.expr.(type) {
		case *ast.StructLit:
			return "(a mapping)"
		case *ast.ListLit:
			return "(a list)"
		}
		if lit, ok := f.expr.(*ast.BasicLit); ok {
			return lit.Value
		}
	}
	return "(none)"
}
