// Package padim is the numeric core of PaDiM (Defard et al., 2020): it turns
// the backbone's feature taps into per-patch embeddings, fits one Gaussian per
// patch position in a single streaming pass, scores frames by Mahalanobis
// distance, renders anomaly maps, picks thresholds, and stores the fitted state
// in a safetensors file that loads by mmap.
//
// The pipeline, per image:
//
//	[]FeatureMap --Embedder.Embed--> embedding (P×d float32)
//	  fit:   Accumulator.Add ... Accumulator.Finalize -> *State
//	  score: Scorer.Score -> distances (P float32)
//	         AnomalyMap.Render -> map at the image's size, image score
//	         Thresholds.Inspect -> Result (score, flag, mask)
//
// Every hot-path method writes into buffers the caller or the type owns, so
// scoring a frame allocates nothing.
package padim
