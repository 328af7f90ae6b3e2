package backbone

import (
	"encoding/binary"
	"image"
	"image/draw"
)

// Median3 replaces each pixel's every channel by the median of its 3×3
// neighbourhood (the edge repeated at the border): a hot pixel, one
// level far off its neighbours, vanishes, and independent sensor noise
// drops to about 0.4 of its spread, while an edge a few pixels wide
// keeps its place. Apply reuses its output buffers: the result is valid
// until the next call.
type Median3 struct {
	gray  *image.Gray
	rgba  *image.RGBA
	nrgba *image.NRGBA
	conv  *image.RGBA // another colour model's frame, drawn as RGBA first
	buf   []byte      // three rows of column sorts
}

// scratch returns lo, mi and hi rows of n samples for median3.
func (m *Median3) scratch(n int) ([]byte, []byte, []byte) {
	if len(m.buf) < 3*n {
		m.buf = make([]byte, 3*n)
	}
	return m.buf[:n], m.buf[n : 2*n], m.buf[2*n : 3*n]
}

// Apply returns img filtered, at the origin. *image.Gray stays gray and
// *image.NRGBA stays NRGBA; everything else becomes *image.RGBA. Alpha is
// filtered as the colours are: in an opaque frame it stays 255, and in
// a premultiplied one no colour exceeds its alpha after (the median is
// monotone, so a channel no level above alpha in every pixel stays so).
func (m *Median3) Apply(img image.Image) image.Image {
	img = normalizeOrigin(img)
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if w <= 0 || h <= 0 {
		return img
	}
	switch im := img.(type) {
	case *image.Gray:
		if m.gray == nil || m.gray.Rect.Dx() != w || m.gray.Rect.Dy() != h {
			m.gray = image.NewGray(image.Rect(0, 0, w, h))
		}
		lo, mi, hi := m.scratch(w)
		median3(m.gray.Pix, m.gray.Stride, im.Pix, im.Stride, w, h, 1, lo, mi, hi)
		return m.gray
	case *image.NRGBA:
		if m.nrgba == nil || m.nrgba.Rect.Dx() != w || m.nrgba.Rect.Dy() != h {
			m.nrgba = image.NewNRGBA(image.Rect(0, 0, w, h))
		}
		lo, mi, hi := m.scratch(4 * w)
		median3(m.nrgba.Pix, m.nrgba.Stride, im.Pix, im.Stride, 4*w, h, 4, lo, mi, hi)
		return m.nrgba
	case *image.RGBA:
		return m.rgbaOf(im.Pix, im.Stride, w, h)
	}
	if m.conv == nil || m.conv.Rect.Dx() != w || m.conv.Rect.Dy() != h {
		m.conv = image.NewRGBA(image.Rect(0, 0, w, h))
	}
	draw.Draw(m.conv, m.conv.Rect, img, b.Min, draw.Src)
	return m.rgbaOf(m.conv.Pix, m.conv.Stride, w, h)
}

// rgbaOf filters RGBA samples into m.rgba.
func (m *Median3) rgbaOf(pix []byte, stride, w, h int) *image.RGBA {
	if m.rgba == nil || m.rgba.Rect.Dx() != w || m.rgba.Rect.Dy() != h {
		m.rgba = image.NewRGBA(image.Rect(0, 0, w, h))
	}
	lo, mi, hi := m.scratch(4 * w)
	median3(m.rgba.Pix, m.rgba.Stride, pix, stride, 4*w, h, 4, lo, mi, hi)
	return m.rgba
}

// median3 filters a plane of w samples per row (every channel of a
// pixel, its neighbours step samples away), h rows, rows stride apart,
// using lo, mi and hi (w samples each) as scratch. Each column of three
// is sorted once and the median of nine is the median of the columns'
// lowest maximum, middle median and highest minimum (the classic 3×3
// shortcut: the same value as sorting all nine). Eight samples are taken
// at a time as the bytes of a uint64 (minMax8), with no branch on the
// data, which a noisy frame would mispredict half the time; the samples
// left over at a row's end one by one.
func median3(dst []byte, dstStride int, src []byte, srcStride, w, h, step int, lo, mi, hi []byte) {
	lo, mi, hi = lo[:w], mi[:w], hi[:w]
	for y := range h {
		r0 := src[max(y-1, 0)*srcStride:][:w]
		r1 := src[y*srcStride:][:w]
		r2 := src[min(y+1, h-1)*srcStride:][:w]
		i := 0
		for ; i+8 <= w; i += 8 {
			l, m, u := sort8(le.Uint64(r0[i:]), le.Uint64(r1[i:]), le.Uint64(r2[i:]))
			le.PutUint64(lo[i:], l)
			le.PutUint64(mi[i:], m)
			le.PutUint64(hi[i:], u)
		}
		for ; i < w; i++ {
			a, b, c := int(r0[i]), int(r1[i]), int(r2[i])
			l, u := min(a, b), max(a, b)
			lo[i], mi[i], hi[i] = byte(min(l, c)), byte(max(l, min(u, c))), byte(max(u, c))
		}
		d := dst[y*dstStride:][:w]
		at := func(i, l, r int) byte {
			return byte(med3(max(int(lo[l]), int(lo[i]), int(lo[r])), med3(int(mi[l]), int(mi[i]), int(mi[r])), min(int(hi[l]), int(hi[i]), int(hi[r]))))
		}
		for i := range min(step, w) { // the left edge repeats itself
			d[i] = at(i, i, min(i+step, w-1))
		}
		if n := w - 2*step; n > 0 { // the interior, in views of equal length
			dc := d[step:][:n]
			ll, lc, lr := lo[:n], lo[step:][:n], lo[2*step:][:n]
			ml, mc, mr := mi[:n], mi[step:][:n], mi[2*step:][:n]
			hl, hc, hr := hi[:n], hi[step:][:n], hi[2*step:][:n]
			j := 0
			for ; j+8 <= n; j += 8 {
				a := max8(max8(le.Uint64(ll[j:]), le.Uint64(lc[j:])), le.Uint64(lr[j:]))
				b := med8(le.Uint64(ml[j:]), le.Uint64(mc[j:]), le.Uint64(mr[j:]))
				c := min8(min8(le.Uint64(hl[j:]), le.Uint64(hc[j:])), le.Uint64(hr[j:]))
				le.PutUint64(dc[j:], med8(a, b, c))
			}
			for ; j < n; j++ {
				a := max(int(ll[j]), int(lc[j]), int(lr[j]))
				b := med3(int(ml[j]), int(mc[j]), int(mr[j]))
				c := min(int(hl[j]), int(hc[j]), int(hr[j]))
				dc[j] = byte(med3(a, b, c))
			}
		}
		for i := max(w-step, step); i < w; i++ { // and so does the right
			d[i] = at(i, i-step, i)
		}
	}
}

// le reads and writes eight samples as one word.
var le = binary.LittleEndian

// med3 is the median of three values.
func med3(a, b, c int) int { return max(min(a, b), min(max(a, b), c)) }

// topBits is the top bit of each byte of a word.
const topBits = 0x8080808080808080

// minMax8 is the bytewise minimum and maximum of two words of eight
// unsigned bytes. A byte of a is at least b's where its top bit is set
// and b's is not, or both top bits are equal and a's low seven bits are
// at least b's: (a|top) − (b&^top) holds 128 + a₇ − b₇ in each byte,
// 1 to 255, so no borrow crosses into the next byte, and its top bit is
// that comparison. The flag is widened to a byte mask by × 0xFF.
func minMax8(a, b uint64) (lo, hi uint64) {
	d := (a | topBits) - (b &^ topBits)
	ge := ((a &^ b) | (^(a ^ b) & d)) & topBits
	m := (ge >> 7) * 0xFF
	hi = (a & m) | (b &^ m)
	return a ^ b ^ hi, hi
}

func min8(a, b uint64) uint64 { l, _ := minMax8(a, b); return l }
func max8(a, b uint64) uint64 { _, h := minMax8(a, b); return h }

// med8 is the bytewise median of three words.
func med8(a, b, c uint64) uint64 {
	l, h := minMax8(a, b)
	return max8(l, min8(h, c))
}

// sort8 sorts three words bytewise: the least, middle and greatest byte
// of each place (with l ≤ h the pair of a and b, the middle is
// min(h, max(l, c)) and the greatest max(h, max(l, c))).
func sort8(a, b, c uint64) (lo, mid, hi uint64) {
	l, h := minMax8(a, b)
	lo, x := minMax8(l, c)
	mid, hi = minMax8(h, x)
	return lo, mid, hi
}
