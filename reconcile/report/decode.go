package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// wireReport is Report as it arrives, with its times as strings, so that a
// bad time is an error naming its field (time.Time's own decoder does not).
// TestWireMatchesReport keeps the two in step.
type wireReport struct {
	AgentID        string  `json:"agentId"`
	Group          string  `json:"group"`
	Channel        string  `json:"channel"`
	Kind           string  `json:"kind"`
	Hostname       string  `json:"hostname,omitempty"`
	Workload       string  `json:"workload,omitempty"`
	CurrentVersion string  `json:"currentVersion"`
	TargetVersion  string  `json:"targetVersion"`
	Health         string  `json:"health"`
	Action         string  `json:"action"`
	Rule           string  `json:"rule"`
	Reason         string  `json:"reason"`
	Message        string  `json:"message"`
	LastError      string  `json:"lastError,omitempty"`
	Outcome        string  `json:"outcome,omitempty"`
	NextWindow     *string `json:"nextWindow,omitempty"`
	UpdaterVersion string  `json:"updaterVersion"`
	Time           string  `json:"time"`
}

// wireFields are the JSON names of a report's fields, for errors.
var wireFields = func() []string {
	t := reflect.TypeFor[wireReport]()
	names := make([]string, t.NumField())
	for i := range names {
		names[i], _, _ = strings.Cut(t.Field(i).Tag.Get("json"), ",")
	}
	return names
}()

// Decode reads one report strictly: a single JSON object, no unknown field,
// every field of its type, then Validate. Errors name the field.
func Decode(data []byte) (Report, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var w wireReport
	if err := dec.Decode(&w); err != nil {
		return Report{}, decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Report{}, errTrailing
	}
	r := Report{
		AgentID: w.AgentID, Group: w.Group, Channel: w.Channel, Kind: w.Kind,
		Hostname: w.Hostname, Workload: w.Workload,
		CurrentVersion: w.CurrentVersion, TargetVersion: w.TargetVersion, Health: w.Health,
		Action: w.Action, Rule: w.Rule, Reason: w.Reason, Message: w.Message,
		LastError: w.LastError, Outcome: w.Outcome, UpdaterVersion: w.UpdaterVersion,
	}
	var errs ValidationError
	if w.NextWindow != nil {
		t, err := parseTime(*w.NextWindow)
		if err != nil {
			errs = append(errs, FieldError{"nextWindow", err.Error()})
		} else {
			r.NextWindow = &t
		}
	}
	if w.Time != "" {
		t, err := parseTime(w.Time)
		if err != nil {
			errs = append(errs, FieldError{"time", err.Error()})
		}
		r.Time = t
	}
	if err := r.Validate(); err != nil {
		for _, fe := range err.(ValidationError) {
			// A time that did not parse is reported once, as unparsable.
			if (fe.Field == "time" && w.Time != "" && r.Time.IsZero()) ||
				(fe.Field == "nextWindow" && w.NextWindow != nil && r.NextWindow == nil) {
				continue
			}
			errs = append(errs, fe)
		}
	}
	if errs != nil {
		return Report{}, errs
	}
	return r, nil
}

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s is not an RFC 3339 time such as 2026-03-28T12:00:00Z", quote(s))
	}
	return t, nil
}

// decodeError rewrites encoding/json's errors to name the field and say
// what to send.
func decodeError(err error) error {
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		// encoding/json quotes the name; keep it quoted unless it is plain.
		name, uerr := strconv.Unquote(f)
		if uerr != nil || len(name) > 64 || !isPlainField(name) {
			name = quote(name)
		}
		return FieldError{Field: name, Message: "unknown field: a report's fields are " + strings.Join(wireFields, ", ")}
	}
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		field := te.Field
		if field == "" {
			return fmt.Errorf("the report must be a JSON object, not %s", te.Value)
		}
		return FieldError{Field: field, Message: fmt.Sprintf("want a %s, not %s", te.Type.Kind(), te.Value)}
	}
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return fmt.Errorf("not valid JSON at byte %d: %s", se.Offset, se.Error())
	}
	if errors.Is(err, io.EOF) {
		return errors.New("empty body: send the report as a JSON object")
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("the JSON object is cut short")
	}
	return fmt.Errorf("not a report: %w", err)
}

func isPlainField(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) && s[i] != '_' {
			return false
		}
	}
	return s != ""
}
