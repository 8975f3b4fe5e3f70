package dataset

import (
	"bytes"
	"encoding/json"
	"strings"
)

// jsonl reads one JSON object: "source" is required, "id", "reference",
// "alignment" and "label" are optional, other fields are ignored.
func (l *loader) jsonl(n int, line []byte, ex *Example) bool {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(line, &obj); err != nil {
		l.problem(n, "malformed JSON: %v", err)
		return false
	}
	if obj == nil {
		l.problem(n, "malformed JSON: want an object, not null")
		return false
	}
	src, present, ok := jsonString(obj, "source")
	switch {
	case !present:
		l.problem(n, `missing field "source"`)
		return false
	case !ok:
		l.problem(n, `field "source": want a string`)
		return false
	case strings.TrimSpace(src) == "":
		l.problem(n, "empty source")
		return false
	}
	ex.Source = strings.TrimSpace(src)
	if raw, ok := obj["id"]; ok && !isNull(raw) {
		var id string
		var num json.Number
		switch {
		case json.Unmarshal(raw, &id) == nil:
		case json.Unmarshal(raw, &num) == nil:
			id = num.String()
		default:
			l.problem(n, `field "id": want a string or a number`)
			return false
		}
		ex.ID = strings.TrimSpace(id)
	}
	ref, present, ok := jsonString(obj, "reference")
	switch {
	case present && !ok:
		l.problem(n, `field "reference": want a string`)
		return false
	case present && strings.TrimSpace(ref) == "":
		l.problem(n, "empty reference")
		return false
	case present:
		ex.Reference, ex.HasReference = strings.TrimSpace(ref), true
	}
	if a, present, ok := jsonString(obj, "alignment"); present {
		switch al, err := ParseAlignment(a, len(strings.Fields(ex.Source)), len(strings.Fields(ex.Reference))); {
		case !ok:
			l.problem(n, `field "alignment": want a string of Pharaoh links ("0-0 1?2")`)
		case !ex.HasReference:
			l.problem(n, `field "alignment" without a reference: alignment dropped`)
		case err != nil:
			l.problem(n, "alignment: %v", err)
		default:
			ex.Alignment = al
		}
	}
	if raw, ok := obj["label"]; ok && !isNull(raw) {
		var b bool
		switch s := string(bytes.TrimSpace(raw)); {
		case json.Unmarshal(raw, &b) == nil:
		case s == "0" || s == "1":
			b = s == "1"
		default:
			l.problem(n, `field "label": want true, false, 0 or 1, not %s: label dropped`, s)
			return true
		}
		ex.Label = &b
	}
	return true
}

// jsonString reads a string field: present is false for a missing or null
// field, ok is false for another JSON type.
func jsonString(obj map[string]json.RawMessage, key string) (s string, present, ok bool) {
	raw, found := obj[key]
	if !found || isNull(raw) {
		return "", false, false
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", true, false
	}
	return s, true, true
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }
