package store

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Selection names the attention rows a run stores (the store setting):
// passes, kinds and layers. It is written as comma-separated terms, each a
// pass (detached, forced, free), a kind (cross, decoder_self,
// encoder_self) or a layer (layer=N; negative N counts from the last
// layer, -1 being the last); terms of one category are alternatives and
// categories combine, a category without terms keeping all. "all" (or "")
// keeps every row. "free,cross,layer=-1" keeps the free pass's cross
// attention of the last layer.
type Selection struct {
	Passes, Kinds []string
	Layers        []int
}

// ParseSelection parses a store setting; see Selection.
func ParseSelection(s string) (Selection, error) {
	var sel Selection
	if s = strings.TrimSpace(s); s == "" || s == "all" {
		return sel, nil
	}
	for _, term := range strings.Split(s, ",") {
		term = strings.TrimSpace(term)
		switch {
		case slices.Contains(knownPasses, term):
			sel.Passes = append(sel.Passes, term)
		case slices.Contains(knownKinds, term):
			sel.Kinds = append(sel.Kinds, term)
		case strings.HasPrefix(term, "layer="):
			n, err := strconv.Atoi(strings.TrimPrefix(term, "layer="))
			if err != nil {
				return Selection{}, fmt.Errorf("store %q: %q: want layer=N", s, term)
			}
			sel.Layers = append(sel.Layers, n)
		default:
			return Selection{}, fmt.Errorf("store %q: %q is not all, a pass (%s), a kind (%s) nor layer=N",
				s, term, strings.Join(knownPasses, ", "), strings.Join(knownKinds, ", "))
		}
	}
	return sel, nil
}

// All reports whether the selection keeps every row.
func (s Selection) All() bool { return len(s.Passes) == 0 && len(s.Kinds) == 0 && len(s.Layers) == 0 }

// Keeps reports whether a row of pass, kind and layer, in a stack of
// layers layers, is stored.
func (s Selection) Keeps(pass, kind string, layer, layers int) bool {
	if len(s.Passes) > 0 && !slices.Contains(s.Passes, pass) {
		return false
	}
	if len(s.Kinds) > 0 && !slices.Contains(s.Kinds, kind) {
		return false
	}
	if len(s.Layers) == 0 {
		return true
	}
	for _, l := range s.Layers {
		if l == layer || (l < 0 && layers+l == layer) {
			return true
		}
	}
	return false
}
