package model

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/inspectd/inspectd/model/align"
	"github.com/inspectd/inspectd/model/backbone"
)

// Options.Recipe values besides a recipe's name.
const (
	// RecipeAuto chooses the recipe per line from its good images (Search).
	RecipeAuto = "auto"
	// RecipeFixed fits the recipe the options spell out (Options.Fixed).
	RecipeFixed = "fixed"
	// RecipePlain names plain PaDiM: the bundled MobileNet v1 with the last
	// tensor of stride 4, 8 and 16 as taps, the frame squashed onto the
	// input, raw Mahalanobis distances, no context scale.
	RecipePlain = "plain"
)

// DefaultContextPool is the context scale's cell size in finest-tap
// positions when a recipe names only its weight: cells of 6 (a 9×9 grid on
// 56×56) measured best on magnetic tile (README, context scale).
const DefaultContextPool = 6

// Recipe is how a detector turns frames into anomaly maps: the backbone and
// its taps, how a frame becomes network input, and how the distances of
// the scales are combined. Everything else (d, the memory budget, ε, the
// blur, the threshold quantile) comes from Options and is the same for
// every recipe. Its Name is what fit's table, model files and the info
// topic show, and what model.recipe and `eval --compare` accept.
type Recipe struct {
	// Backbone is a bundled backbone's name (backbone.Bundles) or, for a
	// backbone of the user's, "" (Options.Backbone.Path then).
	Backbone string `json:"backbone,omitempty"`
	// Taps are the tapped tensors; empty: the backbone's automatic ones.
	Taps []string `json:"taps,omitempty"`
	// Resize fits each view into the network input.
	Resize backbone.ResizeMode `json:"resize"`
	// Tiles > 1 cuts the frame along its long side into this many equal
	// views, each squashed onto the network input and modelled by
	// Gaussians of its own: a long narrow part keeps its resolution along
	// its length.
	Tiles int `json:"tiles,omitempty"`
	// TileAxis is the long side the tiles are cut along, axisX or axisY,
	// taken from the training images (not part of the name).
	TileAxis string `json:"tile_axis,omitempty"`
	// Align registers each frame to the reference view of a good part
	// before anything else (align.Translate or align.Rigid; "" or
	// align.Off: frames are taken as they come).
	Align align.Mode `json:"align,omitempty"`
	// Denoise filters each frame with a 3×3 median per channel before
	// anything else reads its levels (backbone.Median3): hot pixels and
	// most sensor speckle go, edges stay. The search offers it only on a
	// noisy line (LineNoise.Low).
	Denoise bool `json:"denoise,omitempty"`
	// Standardize rescales each frame's brightness and contrast first
	// (backbone.Standardizer).
	Standardize bool `json:"standardize"`
	// ZScore standardizes each scale's distances per position by their
	// mean and spread on good images; the context scale needs it.
	ZScore bool `json:"zscore"`
	// ContextPool > 1 adds the context scale with cells of this many
	// finest-tap positions, weighted by ContextWeight in the map.
	ContextPool   int     `json:"context_pool,omitempty"`
	ContextWeight float64 `json:"context_weight,omitempty"`
	// FineMap: with the context scale, the published map and mask follow
	// the patch scale's evidence (Detector.fineOverlay); the context scale
	// counts in the score.
	FineMap bool `json:"fine_map,omitempty"`
	// Members, when set, make the recipe an ensemble: each member is a
	// detector of its own (its backbone pass, Gaussians and threshold) and
	// the ensemble's map is the mean of the members' maps, each divided by
	// its member's image threshold; every other field is then empty.
	Members []Recipe `json:"members,omitempty"`
}

// Ensemble bounds.
const (
	// ensembleSep joins the members' names in an ensemble's name.
	ensembleSep = "+"
	// maxMembers bounds an ensemble: each member is a backbone pass and a
	// scoring state per frame.
	maxMembers = 4
)

// Ensemble says whether the recipe is an ensemble of members.
func (r Recipe) Ensemble() bool { return len(r.Members) > 0 }

// checkMembers refuses an ensemble its detector could not run: too few or
// too many members, a member that is an ensemble itself, registers frames
// (each member would register on its own, to maps in different views) or
// publishes a fine map of its own.
func (r Recipe) checkMembers() error {
	if len(r.Members) < 2 || len(r.Members) > maxMembers {
		return fmt.Errorf("ensemble of %d members, want 2 to %d", len(r.Members), maxMembers)
	}
	for i, m := range r.Members {
		switch {
		case slices.ContainsFunc(r.Members[:i], func(o Recipe) bool { return o.Name() == m.Name() }):
			return fmt.Errorf("member %s twice: it would average its own map with itself", m.Name())
		case m.Ensemble():
			return fmt.Errorf("member %s is an ensemble itself", m.Name())
		case m.aligned():
			return fmt.Errorf("member %s registers frames: an ensemble's members take frames as they come", m.Name())
		case m.FineMap:
			return fmt.Errorf("member %s publishes its patch scale's map (-fine): an ensemble averages whole maps", m.Name())
		}
	}
	return nil
}

// views is the number of network inputs per frame.
func (r Recipe) views() int { return max(r.Tiles, 1) }

// hasContext says whether the recipe has a context scale.
func (r Recipe) hasContext() bool { return r.ContextPool > 1 && r.ContextWeight > 0 && r.ZScore }

// Name is the recipe's short name: backbone (v1, v2 or custom, with "p"
// for plain PaDiM's taps and "*" for other taps), resize (fit, squash,
// crop, or tilesN), "shift", "rigid" or "turn" when frames are registered
// (translate, rigid or at any angle), "med" when frames are denoised by a
// 3×3 median, "std" when frames are standardized,
// and the scoring:
// raw, z, or z-ctx<weight> (z-ctx<cells>x<weight> for cells other than 6),
// with "-fine" when the published map follows the patch scale.
// Plain PaDiM is called "plain". An ensemble's name is its members'
// joined by "+" (v1-fit-std-z-ctx2+v2-fit-std-z-ctx2+plain).
func (r Recipe) Name() string {
	if r.Ensemble() {
		names := make([]string, len(r.Members))
		for i, m := range r.Members {
			names[i] = m.Name()
		}
		return strings.Join(names, ensembleSep)
	}
	tok := []string{r.backboneToken()}
	if r.Tiles > 1 {
		tok = append(tok, "tiles"+strconv.Itoa(r.Tiles))
	} else {
		tok = append(tok, string(r.resize()))
	}
	if t := alignToken(r.Align); t != "" {
		tok = append(tok, t)
	}
	if r.Denoise {
		tok = append(tok, "med")
	}
	if r.Standardize {
		tok = append(tok, "std")
	}
	switch {
	case r.hasContext():
		w := strconv.FormatFloat(r.ContextWeight, 'g', 4, 64)
		if r.ContextPool != DefaultContextPool {
			w = strconv.Itoa(r.ContextPool) + "x" + w
		}
		tok = append(tok, "z", "ctx"+w)
		if r.FineMap {
			tok = append(tok, "fine")
		}
	case r.ZScore:
		tok = append(tok, "z")
	default:
		tok = append(tok, "raw")
	}
	n := strings.Join(tok, "-")
	if n == "v1p-squash-raw" {
		return RecipePlain
	}
	return n
}

// aligned says whether the recipe registers frames.
func (r Recipe) aligned() bool { return r.Align != "" && r.Align != align.Off }

// alignToken is a registration mode's token in a recipe's name.
func alignToken(m align.Mode) string {
	switch m {
	case align.Translate:
		return "shift"
	case align.Rigid:
		return "rigid"
	case align.Turn:
		return "turn"
	}
	return ""
}

func (r Recipe) resize() backbone.ResizeMode {
	if r.Resize == "" {
		return backbone.ResizeSquash
	}
	return r.Resize
}

func (r Recipe) backboneToken() string {
	b, ok := backbone.BundleByName(r.Backbone)
	if !ok {
		return "custom"
	}
	short := strings.TrimPrefix(b.Name, "mobilenet_")
	switch {
	case slices.Equal(r.Taps, b.Taps):
		return short
	case slices.Equal(r.Taps, b.PlainTaps) || len(r.Taps) == 0:
		return short + "p"
	}
	return short + "*"
}

// ParseRecipe reads a recipe name (Recipe.Name's form, or "plain"; an
// ensemble's members joined by "+"). The taps of "*" backbones and custom
// backbones come from taps.
func ParseRecipe(name string, taps []string) (Recipe, error) {
	if strings.Contains(name, ensembleSep) {
		var r Recipe
		for _, n := range strings.Split(name, ensembleSep) {
			m, err := parseRecipe(n, taps)
			if err != nil {
				return Recipe{}, fmt.Errorf("ensemble %q: %w", name, err)
			}
			r.Members = append(r.Members, m)
		}
		if err := r.checkMembers(); err != nil {
			return Recipe{}, fmt.Errorf("recipe %q: %w", name, err)
		}
		return r, nil
	}
	return parseRecipe(name, taps)
}

// parseRecipe reads one detector's recipe name.
func parseRecipe(name string, taps []string) (Recipe, error) {
	if name == RecipePlain {
		name = "v1p-squash-raw"
	}
	bad := func(why string, a ...any) (Recipe, error) {
		return Recipe{}, fmt.Errorf("recipe %q: %s (want e.g. plain, v1-fit-std-z-ctx2, v1-squash-rigid-z or v2-squash-raw: backbone v1/v2[p], resize fit/squash/crop/tilesN, optional shift/rigid/turn, optional med, optional std, scoring raw/z/z-ctxW[-fine])",
			name, fmt.Sprintf(why, a...))
	}
	tok := strings.Split(name, "-")
	if len(tok) < 3 {
		return bad("not a recipe name: a name has at least three parts joined by '-'")
	}
	var r Recipe
	bb := tok[0]
	switch {
	case bb == "custom":
		r.Taps = taps
	default:
		base := strings.TrimRight(bb, "p*")
		b, ok := backbone.BundleByName("mobilenet_" + base)
		if !ok {
			return bad("unknown backbone %q", bb)
		}
		r.Backbone = b.Name
		switch strings.TrimPrefix(bb, base) {
		case "":
			r.Taps = b.Taps
		case "p":
			r.Taps = b.PlainTaps
		case "*":
			r.Taps = taps
		default:
			return bad("unknown backbone %q", bb)
		}
	}
	rs := tok[1]
	switch {
	case strings.HasPrefix(rs, "tiles"):
		n, err := strconv.Atoi(strings.TrimPrefix(rs, "tiles"))
		if err != nil || n < 2 || n > MaxTiles {
			return bad("tiles %q: want tiles2 to tiles%d", rs, MaxTiles)
		}
		r.Tiles, r.Resize = n, backbone.ResizeSquash
	case rs == string(backbone.ResizeFit) || rs == string(backbone.ResizeSquash) || rs == string(backbone.ResizeCrop):
		r.Resize = backbone.ResizeMode(rs)
	case laterPart(rs):
		// "v1-med-squash-std-z": the user knows the part and put it
		// before the resize, which "unknown resize" did not tell them.
		return bad("%q out of place: the resize (fit, squash, crop or tilesN) comes second, right after the backbone, and %s after it", rs, rs)
	default:
		return bad("unknown resize %q", rs)
	}
	rest := tok[2:]
	switch rest[0] {
	case "shift":
		r.Align, rest = align.Translate, rest[1:]
	case "rigid":
		r.Align, rest = align.Rigid, rest[1:]
	case "turn":
		r.Align, rest = align.Turn, rest[1:]
	}
	if len(rest) > 0 && rest[0] == "med" {
		r.Denoise, rest = true, rest[1:]
		// "out of place" misled for v1-squash-med-med-std-z: the first
		// is in its place, the second is one too many.
		if len(rest) > 0 && rest[0] == "med" {
			return bad(`"med" twice: the filter is named once, after registration and before std`)
		}
	}
	if len(rest) > 0 && rest[0] == "std" {
		r.Standardize, rest = true, rest[1:]
	}
	switch {
	case len(rest) == 0:
		return bad("no scoring")
	case len(rest) == 1 && rest[0] == "raw":
	case len(rest) == 1 && rest[0] == "z":
		r.ZScore = true
	case (len(rest) == 2 || len(rest) == 3 && rest[2] == "fine") && rest[0] == "z" && strings.HasPrefix(rest[1], "ctx"):
		r.FineMap = len(rest) == 3
		c := strings.TrimPrefix(rest[1], "ctx")
		pool := DefaultContextPool
		if p, w, ok := strings.Cut(c, "x"); ok {
			var err error
			if pool, err = strconv.Atoi(p); err != nil || pool < 2 {
				return bad("context cells %q: want an integer ≥ 2", p)
			}
			c = w
		}
		w, err := strconv.ParseFloat(c, 64)
		if err != nil || !(w > 0 && w <= maxContextWeight) {
			return bad("context weight %q: want a number above 0 and at most %d", c, maxContextWeight)
		}
		r.ZScore, r.ContextPool, r.ContextWeight = true, pool, w
	default:
		return bad("%s", unknownPart(rest))
	}
	return r, nil
}

// laterPart reports whether p is a part that comes after the resize.
func laterPart(p string) bool {
	switch p {
	case "shift", "rigid", "turn", "med", "std", "raw", "z":
		return true
	}
	return strings.HasPrefix(p, "ctx")
}

// unknownPart names the first part of a recipe's tail (after backbone,
// resize, registration, med and std) that does not read as scoring: the word
// the user mistyped, not the whole tail.
func unknownPart(rest []string) string {
	switch p := rest[0]; p {
	case "shift", "rigid", "turn":
		return fmt.Sprintf("registration %q out of place: it comes right after the resize", p)
	case "med":
		return `"med" out of place: it comes after registration and before std and the scoring`
	case "std":
		return `"std" out of place: it comes after registration and med, and before the scoring`
	case "raw", "z":
		return fmt.Sprintf("unknown scoring %q", strings.Join(rest, "-"))
	default:
		hint := ""
		if w := nearPart(p); w != "" {
			hint = fmt.Sprintf(" (did you mean %q?)", w)
		}
		return fmt.Sprintf("unknown part %q after the resize%s: shift, rigid or turn, then med, then std, then raw, z or z-ctxW come there", p, hint)
	}
}

// nearPart is the part of a recipe name that p misspells by one letter
// added, dropped, changed or two swapped ("mde" for med), or "": the
// list of parts the refusal gives does not say which one was meant.
func nearPart(p string) string {
	for _, w := range []string{"shift", "rigid", "turn", "med", "std", "raw"} {
		if oneEditApart(p, w) {
			return w
		}
	}
	return ""
}

// oneEditApart reports whether a and b (ASCII) differ by one insertion,
// deletion, substitution or swap of neighbours.
func oneEditApart(a, b string) bool {
	if a == b {
		return false
	}
	if len(a) > len(b) {
		a, b = b, a
	}
	if len(b)-len(a) > 1 {
		return false
	}
	i := 0
	for i < len(a) && a[i] == b[i] {
		i++
	}
	if len(a) < len(b) {
		return a[i:] == b[i+1:]
	}
	if a[i+1:] == b[i+1:] {
		return true
	}
	return i+1 < len(a) && a[i] == b[i+1] && a[i+1] == b[i] && a[i+2:] == b[i+2:]
}

// MaxTiles bounds a recipe's tiles: each is a full backbone pass and a
// Gaussian per position of its own.
const MaxTiles = 8
