package model

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/synod-mpc/synod/engine/model/onnxpb"
	"google.golang.org/protobuf/proto"
)

func floatTensor(name string, dims []int64, v ...float32) *onnxpb.TensorProto {
	return &onnxpb.TensorProto{Name: name, Dims: dims, DataType: int32(onnxpb.TensorProto_FLOAT), FloatData: v}
}

func node(op string, out string, in ...string) *onnxpb.NodeProto {
	return &onnxpb.NodeProto{OpType: op, Name: op + "_" + out, Input: in, Output: []string{out}}
}

// graph is x(1x2) -> MatMul(W 2x2) -> Add(b) -> Relu -> extra..., built by hand.
func graph(extra ...*onnxpb.NodeProto) []byte {
	nodes := []*onnxpb.NodeProto{node("MatMul", "h", "x", "W"), node("Add", "hb", "b", "h"), node("Relu", "r", "hb")}
	out := "r"
	for _, n := range extra {
		nodes = append(nodes, n)
		out = n.Output[0]
	}
	g := &onnxpb.GraphProto{
		Name: "handmade",
		Node: nodes,
		Initializer: []*onnxpb.TensorProto{
			floatTensor("W", []int64{2, 2}, 1, 2, 3, 4), // in x out for MatMul
			floatTensor("b", []int64{2}, 0.5, -0.5),
		},
		Input:  []*onnxpb.ValueInfoProto{{Name: "x"}},
		Output: []*onnxpb.ValueInfoProto{{Name: out}},
	}
	b, err := proto.Marshal(&onnxpb.ModelProto{IrVersion: 7, Graph: g, OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: 13}}})
	if err != nil {
		panic(err)
	}
	return b
}

func TestONNXMatMulAdd(t *testing.T) {
	m, err := LoadONNX(graph(), ONNXOptions{Intervals: [][2]float64{{-10, 10}}})
	if err != nil {
		t.Fatal(err)
	}
	// MatMul's W is in x out: output k = sum_i x_i W[i][k].
	got, err := m.Predict([]float64{1, 1})
	if err != nil {
		t.Fatal(err)
	}
	if want := []float64{1 + 3 + 0.5, 2 + 4 - 0.5}; math.Abs(got[0]-want[0]) > 1e-9 || math.Abs(got[1]-want[1]) > 1e-9 {
		t.Fatalf("got %v, want %v", got, want)
	}
	if m.Layers[0].Activation != ReLU || m.Layers[0].Interval != [2]float64{-10, 10} {
		t.Fatalf("layer: %+v", m.Layers[0])
	}
}

// TestONNXUnsupportedOperator: a graph with an operator outside the
// supported set is refused at load time, naming the operator.
func TestONNXUnsupportedOperator(t *testing.T) {
	for _, op := range []string{"Softmax", "Conv", "Exp"} {
		_, err := LoadONNX(graph(node(op, "y", "r")), ONNXOptions{})
		var uo *UnsupportedOperatorError
		if !errors.As(err, &uo) || uo.Op != op || !strings.Contains(err.Error(), "unsupported operator "+op) {
			t.Fatalf("%s: expected an unsupported operator error, got %v", op, err)
		}
		t.Log(err)
	}
	// Gemm with transA is refused too, with the reason.
	n := node("Gemm", "y", "r", "W")
	n.Attribute = []*onnxpb.AttributeProto{{Name: "transA", I: 1, Type: onnxpb.AttributeProto_INT}}
	if _, err := LoadONNX(graph(n), ONNXOptions{}); err == nil || !strings.Contains(err.Error(), "transA") {
		t.Fatalf("transA: %v", err)
	}
}

func TestONNXGarbage(t *testing.T) {
	for _, b := range [][]byte{nil, {0xff}, []byte("not a model"), graph()[:20]} {
		if _, err := LoadONNX(b, ONNXOptions{}); err == nil {
			t.Errorf("accepted %q", b)
		}
	}
}

func FuzzLoadONNX(f *testing.F) {
	f.Add(fixture(f, "logreg.onnx"))
	f.Add(fixture(f, "mlp.onnx"))
	f.Add(graph())
	f.Add(graph(node("Sigmoid", "s", "r")))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := LoadONNX(b, ONNXOptions{})
		if err == nil {
			if err := m.Validate(); err != nil {
				t.Fatalf("loaded an invalid model: %v", err)
			}
		}
	})
}

func FuzzParseJSON(f *testing.F) {
	f.Add(fixture(f, "logreg.json"))
	f.Add(fixture(f, "mlp.json"))
	f.Add([]byte(`{"inputs": 1, "layers": [{"weights": [[1]], "bias": [0], "activation": "relu", "interval": [-1, 1], "degree": 7}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseJSON(b)
		if err != nil {
			return
		}
		if _, err := m.Predict(make([]float64, m.Inputs)); err != nil {
			t.Fatalf("parsed model does not evaluate: %v", err)
		}
		out, err := m.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseJSON(out); err != nil {
			t.Fatalf("round trip: %v", err)
		}
	})
}
