package diff

import (
	"encoding/json"
	"io"
)

// JSON writes the report as indented JSON for tools; times are RFC 3339 in
// UTC and every list is present, empty when nothing changed.
func JSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}
