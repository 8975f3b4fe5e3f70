package inference

import (
	"errors"
	"fmt"

	ort "github.com/yalue/onnxruntime_go"
	"google.golang.org/protobuf/encoding/protowire"
)

// ONNX protobuf field numbers (onnx.proto).
const (
	pbModelGraph       = 7
	pbGraphInitializer = 5
	pbGraphInput       = 11
	pbGraphOutput      = 12
	pbTensorName       = 8
	pbValueName        = 1
	pbValueType        = 2
	pbTypeTensor       = 1
	pbTypeSequence     = 4
	pbTypeMap          = 5
	pbTypeOptional     = 9
	pbTensorElemType   = 1
	pbTensorShape      = 2
	pbShapeDim         = 1
	pbDimValue         = 1
)

// graphIO reads a model's graph inputs and outputs from its protobuf, as
// ONNX Runtime reports them (inputs that are initializers left out, unknown
// or symbolic sizes as -1). ONNX Runtime's own way builds a session, a
// tenth of a second per graph, and a checkpoint is inspected each time it
// is opened; a graph that ONNX Runtime cannot build still fails at Load.
func graphIO(model []byte) (in, out []ort.InputOutputInfo, err error) {
	var graph []byte
	err = walkProto(model, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num == pbModelGraph && typ == protowire.BytesType {
			graph = v
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("not an ONNX model: %w", err)
	}
	if graph == nil {
		return nil, nil, errors.New("not an ONNX model: no graph")
	}
	inits := map[string]bool{}
	err = walkProto(graph, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case pbGraphInitializer:
			return walkProto(v, func(n protowire.Number, t protowire.Type, b []byte, _ uint64) error {
				if n == pbTensorName && t == protowire.BytesType {
					inits[string(b)] = true
				}
				return nil
			})
		case pbGraphInput, pbGraphOutput:
			info, err := valueInfo(v)
			if err != nil {
				return err
			}
			if num == pbGraphInput {
				in = append(in, info)
			} else {
				out = append(out, info)
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("not an ONNX model: %w", err)
	}
	kept := in[:0]
	for _, i := range in {
		if !inits[i.Name] {
			kept = append(kept, i)
		}
	}
	return kept, out, nil
}

func valueInfo(b []byte) (ort.InputOutputInfo, error) {
	info := ort.InputOutputInfo{OrtValueType: ort.ONNXTypeUnknown}
	err := walkProto(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		switch {
		case num == pbValueName && typ == protowire.BytesType:
			info.Name = string(v)
		case num == pbValueType && typ == protowire.BytesType:
			return walkProto(v, func(n protowire.Number, t protowire.Type, tv []byte, _ uint64) error {
				switch n {
				case pbTypeTensor:
					info.OrtValueType = ort.ONNXTypeTensor
					return tensorType(tv, &info)
				case pbTypeSequence:
					info.OrtValueType = ort.ONNXTypeSequence
				case pbTypeMap:
					info.OrtValueType = ort.ONNXTypeMap
				case pbTypeOptional:
					info.OrtValueType = ort.ONNXTypeOptional
				}
				return nil
			})
		}
		return nil
	})
	return info, err
}

func tensorType(b []byte, info *ort.InputOutputInfo) error {
	return walkProto(b, func(num protowire.Number, typ protowire.Type, v []byte, u uint64) error {
		switch {
		case num == pbTensorElemType && typ == protowire.VarintType:
			info.DataType = ort.TensorElementDataType(u)
		case num == pbTensorShape && typ == protowire.BytesType:
			info.Dimensions = ort.Shape{}
			return walkProto(v, func(n protowire.Number, t protowire.Type, dim []byte, _ uint64) error {
				if n != pbShapeDim || t != protowire.BytesType {
					return nil
				}
				size := int64(-1)
				err := walkProto(dim, func(dn protowire.Number, dt protowire.Type, _ []byte, du uint64) error {
					if dn == pbDimValue && dt == protowire.VarintType {
						size = int64(du)
					}
					return nil
				})
				info.Dimensions = append(info.Dimensions, size)
				return err
			})
		}
		return nil
	})
}
