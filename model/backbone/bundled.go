package backbone

// Bundle is a backbone that `make deps` fetches, checks and installs beside
// the binary (share/inspectd), selectable by its Name.
type Bundle struct {
	// Name selects it in model.backbone and recipe names.
	Name string
	// File is its file name in the share folder.
	File string
	// SHA256 is the file's pinned hex digest (the Makefile checks it).
	SHA256 string
	// Taps are the taps inspectd uses by default, finest first.
	Taps []string
	// PlainTaps are the last tensors of stride 4, 8 and 16 (graph.AutoTaps),
	// the taps of plain PaDiM on this network.
	PlainTaps []string
}

// Names of the bundled backbones.
const (
	MobileNetV1 = "mobilenet_v1"
	MobileNetV2 = "mobilenet_v2"
)

// Bundles lists the bundled backbones, the default first.
//
// MobileNet v1 quant 224 comes from the go-tflite module. Its default taps
// take the stride-16 features at Conv2d_9 rather than the last stride-16
// layer (Conv2d_11): on magnetic tile that raised image AUROC from 0.92 to
// 0.95 and prunes two layers off the network.
//
// MobileNet V2 1.0/224 quant (quantization-aware trained) comes from the
// tflitego module; its taps are the expansion outputs of the last block at
// stride 4, 8 and 16 (56², 28², 14² with 144, 192 and 576 channels), the
// automatic ones.
func Bundles() []Bundle {
	v1 := "MobilenetV1/MobilenetV1/"
	v2 := "MobilenetV2/"
	return []Bundle{
		{
			Name: MobileNetV1, File: "mobilenet_quant_v1_224.tflite",
			SHA256:    "c4149e63f56056d9a564ceed1d96a84d7a50d90b0ff1da01f72afabe752ef097",
			Taps:      []string{v1 + "Conv2d_3_pointwise/Relu6", v1 + "Conv2d_5_pointwise/Relu6", v1 + "Conv2d_9_pointwise/Relu6"},
			PlainTaps: []string{v1 + "Conv2d_3_pointwise/Relu6", v1 + "Conv2d_5_pointwise/Relu6", v1 + "Conv2d_11_pointwise/Relu6"},
		},
		{
			Name: MobileNetV2, File: "mobilenet_v2_1.0_224_quant.tflite",
			SHA256:    "f08d447cde49b4e0446428aa921aff0a14ea589fa9c5817b31f83128e9a43c1d",
			Taps:      []string{v2 + "expanded_conv_3/expand/Relu6", v2 + "expanded_conv_6/expand/Relu6", v2 + "expanded_conv_13/expand/Relu6"},
			PlainTaps: []string{v2 + "expanded_conv_3/expand/Relu6", v2 + "expanded_conv_6/expand/Relu6", v2 + "expanded_conv_13/expand/Relu6"},
		},
	}
}

// BundleByName returns the bundled backbone called name.
func BundleByName(name string) (Bundle, bool) {
	for _, b := range Bundles() {
		if b.Name == name {
			return b, true
		}
	}
	return Bundle{}, false
}

// BundleBySHA256 returns the bundled backbone whose file has this digest.
func BundleBySHA256(sum string) (Bundle, bool) {
	for _, b := range Bundles() {
		if b.SHA256 == sum {
			return b, true
		}
	}
	return Bundle{}, false
}
