package model

import (
	"errors"
	"fmt"
)

// Info describes a fitted detector: what it was fitted with and how big it is.
type Info struct {
	// Recipe is the recipe's name (Recipe.Name); RecipeChoice says how it
	// was chosen ("auto", "fixed" or "named") and RecipeFigures holds the
	// validation figures it was chosen by (auto only).
	Recipe        string         `json:"recipe"`
	RecipeChoice  string         `json:"recipe_choice,omitempty"`
	RecipeFigures *RecipeFigures `json:"recipe_figures,omitempty"`
	// LineNoise is the training images' sensor noise against their
	// contrast (nil: not measured, files from before it was).
	LineNoise      *LineNoise `json:"line_noise,omitempty"`
	Backbone       string     `json:"backbone"`
	BackboneSHA256 string     `json:"backbone_sha256"`
	Taps           []string   `json:"taps"`
	Resize         string     `json:"resize"`
	// Tiles is the number of views per frame (0 or 1: the whole frame),
	// cut along TileAxis ("x" or "y").
	Tiles    int     `json:"tiles,omitempty"`
	TileAxis string  `json:"tile_axis,omitempty"`
	GridH    int     `json:"grid_h"`
	GridW    int     `json:"grid_w"`
	Pool     int     `json:"pool"`
	Features int     `json:"features"`
	Epsilon  float64 `json:"epsilon"`
	Sigma    float64 `json:"sigma"`
	// PositionZScore says whether distances are standardized per position.
	PositionZScore bool `json:"position_zscore"`
	// ContextPool is the context scale's cell size in finest-tap
	// positions (0: none), on a ContextGridH×ContextGridW grid with
	// ContextFeatures features; StateBytes includes its state.
	ContextPool     int `json:"context_pool"`
	ContextGridH    int `json:"context_grid_h,omitempty"`
	ContextGridW    int `json:"context_grid_w,omitempty"`
	ContextFeatures int `json:"context_features,omitempty"`
	// ContextWeight multiplies the context scale's standardized distances.
	ContextWeight float64 `json:"context_weight,omitempty"`
	Standardize   bool    `json:"standardize"`
	// Denoise says frames are filtered by a 3×3 median first
	// (Recipe.Denoise); absent where they are not.
	Denoise bool `json:"denoise,omitempty"`
	// TrainInput is what the training images were: "gray" or "colour"
	// ("" in files from before it was recorded).
	TrainInput string `json:"train_input,omitempty"`
	// TrainAspect is the least and greatest width/height of the training
	// images (absent in files from before it was recorded).
	TrainAspect []float64 `json:"train_aspect,omitempty"`
	// Align is the registration mode (off, translate, rigid, turn) and
	// AlignMinConfidence the confidence floor learned at fit time.
	Align              string  `json:"align"`
	AlignMinConfidence float64 `json:"align_min_confidence,omitempty"`
	ImageThreshold     float64 `json:"image_threshold"`
	PixelThreshold     float64 `json:"pixel_threshold"`
	// Images is the number of images the Gaussians were fitted on.
	Images int `json:"images"`
	// ThresholdImages is the number of good images whose scores the
	// threshold was chosen from: every training image, scored leave one
	// out; files from before held some images out (HeldOut) and chose it
	// from those.
	ThresholdImages int    `json:"threshold_images"`
	HeldOut         int    `json:"held_out,omitempty"`
	Fitted          string `json:"fitted"`
	StateBytes      int64  `json:"state_bytes"`
	// Precision is how frames are scored: "float16" (inverse covariances
	// rounded, Options.HalfPrecision) or "float32". StateBytes stays the
	// float32 state's size, as the file holds it.
	Precision string `json:"precision"`
	ID        string `json:"id"`
	// Members describe an ensemble's members (Recipe.Members), each fitted
	// on the same images; the fields above are then the first member's,
	// but for Recipe, the thresholds, StateBytes (all members') and ID.
	Members []Info `json:"members,omitempty"`
}

// RecipeFigures are a recipe's validation figures in the search: how well
// its maps separate synthetic defects pasted into held-out good images from
// those images untouched, and how its threshold does on them.
type RecipeFigures struct {
	// ImageAUROC: synthetic-defect images against untouched good ones.
	ImageAUROC float64 `json:"image_auroc"`
	// PixelAUROC and PRO: the synthetic defects' pixels against all
	// normal pixels of both.
	PixelAUROC float64 `json:"pixel_auroc"`
	PRO        float64 `json:"pro"`
	// FalseAlarms is the share of untouched held-out good images above the
	// recipe's threshold, Misses the share of synthetic defects below it.
	FalseAlarms float64 `json:"false_alarms"`
	Misses      float64 `json:"misses"`
	// Score is what the search ranks by (SearchOptions: the mean of the
	// three AUROC-type figures, less a penalty for false alarms).
	Score float64 `json:"score"`
	// PixelRatio is the pixel threshold's share of the image threshold
	// that the recipe's alarm regions were measured best at (PixelRatios,
	// chosen as ratioTrial.choose says), RegionIoU their box IoU with the
	// synthetic defects there, over the RegionImages defects the threshold
	// flags. Zero in files fitted before they were measured (the pixel
	// threshold was then padim.DefaultPixelRatio of the image threshold).
	PixelRatio   float64 `json:"pixel_ratio,omitempty"`
	RegionIoU    float64 `json:"region_iou,omitempty"`
	RegionImages int     `json:"region_images,omitempty"`
	// Good and Defects are the numbers of validation images.
	Good    int `json:"good"`
	Defects int `json:"defects"`
}

// MinSeparation is the least image AUROC on the recipe search's
// synthetic defects that a fitted model is installed with (0.5 is chance).
// The recipes the search chooses on the four shared data sets reach
// 0.8–0.95; a line whose images the chosen recipe cannot tell from its own
// images with defects pasted in (2000×100 strips of screws reached 0.50)
// would pass real defects as good, the one failure an inspection must not
// have. The validation set is small (tens of images each way), so the
// bound sits well above chance rather than just at it.
const MinSeparation = 0.6

// ErrNoSeparation is wrapped by FitReport.Separates's error.
var ErrNoSeparation = errors.New("the model barely separates synthetic defects from good images, if at all")

// Separates returns nil when the recipe search measured the fitted recipe
// separating its synthetic defects from good images (image AUROC at least
// MinSeparation), or measured nothing (no search: a fixed or named recipe,
// or too few images); otherwise an error wrapping ErrNoSeparation that
// gives the figures and what to check.
func (r FitReport) Separates() error {
	s := r.Search
	if s == nil || s.Fallback != "" || s.Chosen.Figures.Defects == 0 {
		return nil
	}
	f := s.Chosen.Figures
	if f.ImageAUROC >= MinSeparation {
		return nil
	}
	return fmt.Errorf("%w: recipe %s, image AUROC %.3f on %d held-out good images and %d with synthetic defects (at least %.2f wanted, 0.5 is chance), %.0f%% of the defects below its threshold: "+
		"defective parts would pass as good. Check that the images show the parts under inspection, in focus, all from the same view; more images, or images cut to the part (capture.roi on the daemon's frames), may help",
		ErrNoSeparation, s.Chosen.Name, f.ImageAUROC, f.Good, f.Defects, MinSeparation, 100*f.Misses)
}

// FewThresholdImages is the number of good images below which a fitted
// threshold is the largest of a handful of leave-one-out scores: good parts
// from the line's own spread score above it often (5 images flagged every
// good test image of screw). The fit command warns below it; 200 are
// recommended.
const FewThresholdImages = 50
