package store

import "testing"

func TestSelection(t *testing.T) {
	tests := []struct {
		spec  string
		keeps [][4]any // pass, kind, layer, layers
		drops [][4]any
	}{
		{spec: "all", keeps: [][4]any{{PassFree, KindCross, 0, 6}, {PassDetached, KindEncoderSelf, 5, 6}}},
		{spec: "", keeps: [][4]any{{PassForced, KindDecoderSelf, 3, 6}}},
		{
			spec:  "cross",
			keeps: [][4]any{{PassFree, KindCross, 0, 6}, {PassDetached, KindCross, 5, 6}},
			drops: [][4]any{{PassFree, KindEncoderSelf, 0, 6}, {PassForced, KindDecoderSelf, 0, 6}},
		},
		{
			spec:  "free, forced ,cross,layer=-1,layer=0",
			keeps: [][4]any{{PassFree, KindCross, 5, 6}, {PassForced, KindCross, 0, 6}, {PassFree, KindCross, 1, 2}},
			drops: [][4]any{{PassDetached, KindCross, 5, 6}, {PassFree, KindCross, 3, 6}, {PassFree, KindDecoderSelf, 5, 6}},
		},
	}
	for _, tt := range tests {
		sel, err := ParseSelection(tt.spec)
		if err != nil {
			t.Fatalf("ParseSelection(%q): %v", tt.spec, err)
		}
		for _, k := range tt.keeps {
			if !sel.Keeps(k[0].(string), k[1].(string), k[2].(int), k[3].(int)) {
				t.Errorf("%q drops %v", tt.spec, k)
			}
		}
		for _, k := range tt.drops {
			if sel.Keeps(k[0].(string), k[1].(string), k[2].(int), k[3].(int)) {
				t.Errorf("%q keeps %v", tt.spec, k)
			}
		}
	}
	for _, bad := range []string{"cros", "layer=x", "free,,cross", "all,cross"} {
		if _, err := ParseSelection(bad); err == nil {
			t.Errorf("ParseSelection(%q) succeeded", bad)
		}
	}
}
