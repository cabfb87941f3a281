package model

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/synod-mpc/synod/engine/model/onnxpb"
	"google.golang.org/protobuf/proto"
)

// ONNX loading. The protobuf schema is ONNX's own (onnxpb/onnx.proto,
// generated with protoc-gen-go); LoadONNX accepts the graphs torch exports
// for stacks of Linear layers and activations:
//
//	Gemm (transA=0, transB 0 or 1, alpha, beta), MatMul followed by Add,
//	Sigmoid, Tanh, Relu, Identity
//
// in a single chain from the one non-initializer graph input to the one graph
// output, weights as FLOAT or DOUBLE initializers. Any other operator is
// refused with an *UnsupportedOperatorError naming it, before any data is
// encrypted. ONNX carries no activation intervals or standardization: they
// come from ONNXOptions.

// MaxONNXSize bounds the input of LoadONNX.
const MaxONNXSize = 64 << 20

// DefaultInterval is the activation interval LoadONNX uses when ONNXOptions
// does not give one: sigmoid and tanh are saturated (within 3.4e-4 of their
// limits) beyond it.
var DefaultInterval = [2]float64{-8, 8}

// ONNXOptions completes an ONNX graph with what ONNX does not carry.
type ONNXOptions struct {
	// Name of the model (default: the graph's name).
	Name string
	// Intervals of the activations, in graph order; activations beyond
	// the list (or all, if nil) get DefaultInterval.
	Intervals [][2]float64
	// Degrees of the activations, in graph order; 0 or missing = automatic.
	Degrees []int
	// Mean and Std standardize the features (optional, both or neither).
	Mean, Std []float64
}

// UnsupportedOperatorError reports an ONNX operator LoadONNX cannot map.
type UnsupportedOperatorError struct {
	Op, Node, Reason string
}

func (e *UnsupportedOperatorError) Error() string {
	msg := fmt.Sprintf("onnx: unsupported operator %s (node %q)", e.Op, e.Node)
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	return msg + "; supported: Gemm, MatMul, Add, Sigmoid, Tanh, Relu, Identity"
}

// LoadONNX parses a serialized ONNX ModelProto into a Model.
func LoadONNX(b []byte, opts ONNXOptions) (*Model, error) {
	if len(b) > MaxONNXSize {
		return nil, fmt.Errorf("onnx: %d bytes exceed %d", len(b), MaxONNXSize)
	}
	var mp onnxpb.ModelProto
	if err := proto.Unmarshal(b, &mp); err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	g := mp.GetGraph()
	if g == nil || len(g.GetNode()) == 0 {
		return nil, errors.New("onnx: model has no graph or an empty graph")
	}
	for _, op := range mp.GetOpsetImport() {
		if d := op.GetDomain(); d != "" && d != "ai.onnx" {
			return nil, fmt.Errorf("onnx: operator set domain %q not supported", d)
		}
	}
	inits := map[string]*onnxpb.TensorProto{}
	for _, t := range g.GetInitializer() {
		inits[t.GetName()] = t
	}
	var dataInputs []*onnxpb.ValueInfoProto
	for _, in := range g.GetInput() {
		if _, ok := inits[in.GetName()]; !ok {
			dataInputs = append(dataInputs, in)
		}
	}
	if len(dataInputs) != 1 {
		return nil, fmt.Errorf("onnx: expected one data input, found %d", len(dataInputs))
	}
	if len(g.GetOutput()) != 1 {
		return nil, fmt.Errorf("onnx: expected one graph output, found %d", len(g.GetOutput()))
	}

	m := &Model{Name: opts.Name, Mean: opts.Mean, Std: opts.Std}
	if m.Name == "" {
		m.Name = g.GetName()
	}
	cur := dataInputs[0].GetName()
	width := -1 // unknown until the first layer
	if dims := dataInputs[0].GetType().GetTensorType().GetShape().GetDim(); len(dims) > 0 {
		if v := dims[len(dims)-1].GetDimValue(); v > 0 && v <= MaxInputs {
			width = int(v)
		}
	}
	m.Inputs = width
	open := false // the last layer has no activation yet (Add may follow)
	activations, weights := 0, 0
	// budget counts the weights of a new layer against MaxWeights before
	// it is allocated.
	budget := func(in, out int) error {
		if weights += in * out; weights > MaxWeights {
			return fmt.Errorf("onnx: more than %d weights", MaxWeights)
		}
		return nil
	}

	for _, n := range g.GetNode() {
		op := n.GetOpType()
		if d := n.GetDomain(); d != "" && d != "ai.onnx" {
			return nil, &UnsupportedOperatorError{Op: d + "." + op, Node: n.GetName(), Reason: "custom domain"}
		}
		if len(n.GetOutput()) != 1 {
			return nil, fmt.Errorf("onnx: node %q (%s) has %d outputs, expected 1", n.GetName(), op, len(n.GetOutput()))
		}
		ins := n.GetInput()
		switch op {
		case "Gemm", "MatMul":
			if len(ins) < 2 || ins[0] != cur {
				return nil, &UnsupportedOperatorError{Op: op, Node: n.GetName(), Reason: "first input must be the data flowing through the chain"}
			}
			w, err := matrix(inits, ins[1])
			if err != nil {
				return nil, fmt.Errorf("onnx: node %q: %w", n.GetName(), err)
			}
			transB, alpha, beta := false, 1.0, 1.0
			if op == "Gemm" {
				for _, a := range n.GetAttribute() {
					switch a.GetName() {
					case "transA":
						if a.GetI() != 0 {
							return nil, &UnsupportedOperatorError{Op: op, Node: n.GetName(), Reason: "transA=1"}
						}
					case "transB":
						transB = a.GetI() != 0
					case "alpha":
						alpha = float64(a.GetF())
					case "beta":
						beta = float64(a.GetF())
					default:
						return nil, &UnsupportedOperatorError{Op: op, Node: n.GetName(), Reason: "attribute " + a.GetName()}
					}
				}
			} else if len(ins) != 2 {
				return nil, fmt.Errorf("onnx: node %q: MatMul with %d inputs", n.GetName(), len(ins))
			}
			var out, in int
			if transB {
				out, in = w.rows, w.cols
			} else {
				in, out = w.rows, w.cols
			}
			if width >= 0 && in != width {
				return nil, fmt.Errorf("onnx: node %q: weights take %d inputs, the data has %d", n.GetName(), in, width)
			}
			if out < 1 || out > MaxWidth || in < 1 || in > MaxInputs {
				return nil, fmt.Errorf("onnx: node %q: weights %dx%d outside the limits", n.GetName(), w.rows, w.cols)
			}
			if m.Inputs < 0 {
				m.Inputs = in
			}
			if len(m.Layers) >= MaxLayers {
				return nil, fmt.Errorf("onnx: more than %d layers", MaxLayers)
			}
			if err := budget(in, out); err != nil {
				return nil, err
			}
			layer := Layer{Weights: make([][]float64, out), Bias: make([]float64, out), Activation: Identity}
			for k := range out {
				layer.Weights[k] = make([]float64, in)
				for i := range in {
					if transB {
						layer.Weights[k][i] = alpha * w.at(k, i)
					} else {
						layer.Weights[k][i] = alpha * w.at(i, k)
					}
				}
			}
			if op == "Gemm" && len(ins) >= 3 && ins[2] != "" {
				if err := addBias(&layer, inits, ins[2], beta); err != nil {
					return nil, fmt.Errorf("onnx: node %q: %w", n.GetName(), err)
				}
			}
			m.Layers = append(m.Layers, layer)
			width, open = out, true
		case "Add":
			if len(ins) != 2 || (ins[0] != cur && ins[1] != cur) {
				return nil, &UnsupportedOperatorError{Op: op, Node: n.GetName(), Reason: "only the addition of a constant bias to the data is supported"}
			}
			if !open {
				return nil, &UnsupportedOperatorError{Op: op, Node: n.GetName(), Reason: "Add must follow Gemm or MatMul"}
			}
			other := ins[0]
			if other == cur {
				other = ins[1]
			}
			if err := addBias(&m.Layers[len(m.Layers)-1], inits, other, 1); err != nil {
				return nil, fmt.Errorf("onnx: node %q: %w", n.GetName(), err)
			}
		case "Sigmoid", "Tanh", "Relu":
			if len(ins) != 1 || ins[0] != cur {
				return nil, &UnsupportedOperatorError{Op: op, Node: n.GetName(), Reason: "input must be the data flowing through the chain"}
			}
			if !open {
				// An activation on the input or right after another one:
				// an identity dense layer (one level) carries it.
				if width < 1 || width > MaxWidth || len(m.Layers) >= MaxLayers {
					return nil, fmt.Errorf("onnx: node %q: activation on data of unknown or too large width", n.GetName())
				}
				if err := budget(width, width); err != nil {
					return nil, err
				}
				m.Layers = append(m.Layers, identityLayer(width))
			}
			l := &m.Layers[len(m.Layers)-1]
			l.Activation = map[string]Activation{"Sigmoid": Sigmoid, "Tanh": Tanh, "Relu": ReLU}[op]
			l.Interval = DefaultInterval
			if activations < len(opts.Intervals) {
				l.Interval = opts.Intervals[activations]
			}
			if activations < len(opts.Degrees) {
				l.Degree = opts.Degrees[activations]
			}
			activations++
			open = false
		case "Identity":
			if len(ins) != 1 || ins[0] != cur {
				return nil, &UnsupportedOperatorError{Op: op, Node: n.GetName(), Reason: "input must be the data flowing through the chain"}
			}
		default:
			return nil, &UnsupportedOperatorError{Op: op, Node: n.GetName()}
		}
		cur = n.GetOutput()[0]
	}
	if g.GetOutput()[0].GetName() != cur {
		return nil, fmt.Errorf("onnx: graph output %q is not the end of the chain %q", g.GetOutput()[0].GetName(), cur)
	}
	if len(m.Layers) == 0 {
		return nil, errors.New("onnx: graph has no dense layer")
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	return m, nil
}

func identityLayer(n int) Layer {
	l := Layer{Weights: make([][]float64, n), Bias: make([]float64, n)}
	for k := range n {
		l.Weights[k] = make([]float64, n)
		l.Weights[k][k] = 1
	}
	return l
}

type dense2D struct {
	rows, cols int
	v          []float64
}

func (d dense2D) at(r, c int) float64 { return d.v[r*d.cols+c] }

func matrix(inits map[string]*onnxpb.TensorProto, name string) (dense2D, error) {
	t, ok := inits[name]
	if !ok {
		return dense2D{}, fmt.Errorf("weights %q are not an initializer (encrypted or computed weights are not supported)", name)
	}
	if len(t.GetDims()) != 2 {
		return dense2D{}, fmt.Errorf("weights %q have %d dimensions, expected 2", name, len(t.GetDims()))
	}
	v, err := tensorValues(t)
	if err != nil {
		return dense2D{}, err
	}
	return dense2D{rows: int(t.GetDims()[0]), cols: int(t.GetDims()[1]), v: v}, nil
}

func addBias(l *Layer, inits map[string]*onnxpb.TensorProto, name string, beta float64) error {
	t, ok := inits[name]
	if !ok {
		return fmt.Errorf("bias %q is not an initializer", name)
	}
	v, err := tensorValues(t)
	if err != nil {
		return err
	}
	switch len(v) {
	case 1:
		for k := range l.Bias {
			l.Bias[k] += beta * v[0]
		}
	case len(l.Bias):
		for k := range l.Bias {
			l.Bias[k] += beta * v[k]
		}
	default:
		return fmt.Errorf("bias %q has %d values for %d outputs", name, len(v), len(l.Bias))
	}
	return nil
}

// tensorValues decodes a FLOAT or DOUBLE tensor stored in the model.
func tensorValues(t *onnxpb.TensorProto) ([]float64, error) {
	if t.GetDataLocation() == onnxpb.TensorProto_EXTERNAL {
		return nil, fmt.Errorf("tensor %q: external data is not supported", t.GetName())
	}
	n := 1
	for _, d := range t.GetDims() {
		if d < 0 || d > MaxWeights || n*int(d) > MaxWeights {
			return nil, fmt.Errorf("tensor %q: dimensions %v outside the limits", t.GetName(), t.GetDims())
		}
		n *= int(d)
	}
	v := make([]float64, n)
	switch onnxpb.TensorProto_DataType(t.GetDataType()) {
	case onnxpb.TensorProto_FLOAT:
		if raw := t.GetRawData(); raw != nil {
			if len(raw) != 4*n {
				return nil, fmt.Errorf("tensor %q: %d raw bytes for %d floats", t.GetName(), len(raw), n)
			}
			for i := range v {
				v[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])))
			}
		} else {
			if len(t.GetFloatData()) != n {
				return nil, fmt.Errorf("tensor %q: %d floats for %d elements", t.GetName(), len(t.GetFloatData()), n)
			}
			for i, f := range t.GetFloatData() {
				v[i] = float64(f)
			}
		}
	case onnxpb.TensorProto_DOUBLE:
		if raw := t.GetRawData(); raw != nil {
			if len(raw) != 8*n {
				return nil, fmt.Errorf("tensor %q: %d raw bytes for %d doubles", t.GetName(), len(raw), n)
			}
			for i := range v {
				v[i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))
			}
		} else {
			if len(t.GetDoubleData()) != n {
				return nil, fmt.Errorf("tensor %q: %d doubles for %d elements", t.GetName(), len(t.GetDoubleData()), n)
			}
			copy(v, t.GetDoubleData())
		}
	default:
		return nil, fmt.Errorf("tensor %q: data type %d not supported (FLOAT or DOUBLE)", t.GetName(), t.GetDataType())
	}
	for i, x := range v {
		if !finite(x) {
			return nil, fmt.Errorf("tensor %q: element %d = %g is not finite or too large", t.GetName(), i, x)
		}
	}
	return v, nil
}
