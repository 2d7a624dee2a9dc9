// Package media owns uploaded files: photos are checked by their content, bounded
// before they are decoded, re-encoded without metadata and kept in a blob store.
package media

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"

	"golang.org/x/image/draw"
	"golang.org/x/image/webp"
	"golang.org/x/sync/semaphore"
)

// Limits of an uploaded photo.
const (
	MaxPhotoBytes = 10 << 20 // as uploaded
	MaxPhotos     = 5        // per message
	MaxSide       = 2048     // longest side after resizing
	// MaxPixels bounds what a photo may decode to (a 48-megapixel phone photo fits);
	// it is checked from the header before decoding, so a small file that claims a
	// huge image (a decompression bomb) is refused without allocating for it.
	MaxPixels = 50_000_000
	maxDim    = 20_000
)

// Errors with stable meanings.
var (
	ErrTooLarge      = errors.New("media: the photo is larger than 10 MB")
	ErrNotImage      = errors.New("media: the file is not a JPEG, PNG or WebP image")
	ErrTooManyPixels = errors.New("media: the image is too large in pixels")
	ErrBroken        = errors.New("media: the image cannot be read")
)

// Photo is a re-encoded photo, ready to store: always JPEG, without metadata.
type Photo struct {
	Data          []byte
	Width, Height int
}

// Photos re-encodes uploaded photos. Decoding a photo takes memory in proportion to
// its pixels, so every decode of the server draws from one budget: a burst of
// uploads waits for room (or gives up when its request ends) instead of taking the
// machine's memory. The app makes one and hands it to the services that take photos.
type Photos struct {
	budget *semaphore.Weighted
	size   int64
}

// DecodeBudget is the memory all photo decodes together may take, by default.
const DecodeBudget = 384 << 20

// NewPhotos returns a processor whose decodes together take at most budget bytes.
func NewPhotos(budget int64) *Photos {
	return &Photos{budget: semaphore.NewWeighted(budget), size: budget}
}

// Process reads an upload and returns it re-encoded. The format is told by the
// bytes, never the file name; size and dimensions are checked before decoding;
// the EXIF orientation is applied (so the photo stands as taken) and then every
// piece of metadata is dropped, since only pixels are written back.
func (ps *Photos) Process(ctx context.Context, r io.Reader) (Photo, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxPhotoBytes+1))
	if err != nil {
		return Photo{}, err
	}
	if len(data) > MaxPhotoBytes {
		return Photo{}, ErrTooLarge
	}
	var decode func(io.Reader) (image.Image, error)
	var config func(io.Reader) (image.Config, error)
	orientation := 1
	switch {
	case bytes.HasPrefix(data, []byte("\xff\xd8\xff")):
		decode, config = jpeg.Decode, jpeg.DecodeConfig
		orientation = jpegOrientation(data)
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		decode, config = png.Decode, png.DecodeConfig
	case len(data) > 12 && string(data[:4]) == "RIFF" && string(data[8:12]) == "WEBP":
		decode, config = webp.Decode, webp.DecodeConfig
	default:
		return Photo{}, ErrNotImage
	}
	cfg, err := config(bytes.NewReader(data))
	if err != nil {
		return Photo{}, ErrBroken
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width > maxDim || cfg.Height > maxDim || cfg.Width*cfg.Height > MaxPixels {
		return Photo{}, ErrTooManyPixels
	}
	// What decoding will take, from the header: the pixels at the decoder's own
	// depth (a 16-bit PNG takes 8 bytes a pixel), a progressive JPEG's coefficients
	// besides, and the resized copy. Decodes wait for room in a shared budget, so a
	// burst of uploads cannot take the machine's memory; one that could never fit
	// is refused.
	need := int64(cfg.Width) * int64(cfg.Height) * bytesPerPixel(cfg.ColorModel)
	if bytes.HasPrefix(data, []byte("\xff\xd8\xff")) && jpegProgressive(data) {
		need += int64(cfg.Width) * int64(cfg.Height) * 6
	}
	need += MaxSide * MaxSide * 4 * 2
	if k := int64(shrinkFactor(cfg.Width, cfg.Height)); k >= 2 {
		need += int64(cfg.Width) / k * (int64(cfg.Height) / k) * 4
	}
	if need > ps.size {
		return Photo{}, ErrTooManyPixels
	}
	if err := ps.budget.Acquire(ctx, need); err != nil {
		return Photo{}, err
	}
	defer ps.budget.Release(need)
	img, err := decode(bytes.NewReader(data))
	if err != nil {
		return Photo{}, ErrBroken
	}
	out := fit(img)
	out = orient(out, orientation)
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, out, &jpeg.Options{Quality: 85}); err != nil {
		return Photo{}, err
	}
	b := out.Bounds()
	return Photo{Data: buf.Bytes(), Width: b.Dx(), Height: b.Dy()}, nil
}

// bytesPerPixel is what the standard decoders allocate a pixel for a colour model,
// rounded up where the layout varies (YCbCr subsampling).
func bytesPerPixel(m color.Model) int64 {
	switch m {
	case color.GrayModel:
		return 1
	case color.Gray16Model:
		return 2
	case color.YCbCrModel:
		return 3
	case color.RGBAModel, color.NRGBAModel, color.CMYKModel:
		return 4
	}
	if _, ok := m.(color.Palette); ok {
		return 1
	}
	return 8 // RGBA64, NRGBA64 and anything unknown
}

// jpegProgressive reports whether a JPEG is progressive (SOF2), whose decoder keeps
// every coefficient in memory besides the pixels.
func jpegProgressive(data []byte) bool {
	for i := 2; i+4 <= len(data) && data[i] == 0xff; {
		marker := data[i+1]
		if marker == 0xc2 || marker == 0xc6 || marker == 0xca || marker == 0xce {
			return true
		}
		size := int(data[i+2])<<8 | int(data[i+3])
		if marker == 0xda || size < 2 {
			return false
		}
		i += 2 + size
	}
	return false
}

// fit scales an image so its longest side is at most MaxSide, onto white (JPEG has
// no transparency; a transparent PNG would otherwise turn black).
//
// A photo more than twice too large is first shrunk by a whole factor, each block of
// pixels averaged into one, and what is left is a bilinear step of less than two. The
// kernel scalers of x/image/draw would do it in one step but keep a buffer of 32 bytes
// for each pixel of the destination's width times the source's height: 200 MB for a
// 12-megapixel phone photo, 460 MB for a 49-megapixel one, which five photos in a
// message, or a few messages at once, cannot be allowed to take.
func fit(img image.Image) *image.RGBA {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if w > MaxSide || h > MaxSide {
		if w >= h {
			w, h = MaxSide, max(1, h*MaxSide/w)
		} else {
			w, h = max(1, w*MaxSide/h), MaxSide
		}
	}
	if k := shrinkFactor(b.Dx(), b.Dy()); k >= 2 {
		img = shrink(img, k)
		b = img.Bounds()
	}
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(dst, dst.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	if w == b.Dx() && h == b.Dy() {
		draw.Draw(dst, dst.Bounds(), img, b.Min, draw.Over)
	} else {
		draw.ApproxBiLinear.Scale(dst, dst.Bounds(), img, b, draw.Over, nil)
	}
	return dst
}

// shrinkFactor is the whole factor by which fit first shrinks a photo of w × h: the
// largest that keeps its longest side at least MaxSide (1 when it is less than twice
// that), and its shortest side at least one pixel.
func shrinkFactor(w, h int) int { return min(max(w, h)/MaxSide, min(w, h)) }

// shrink averages each k × k block of img into one pixel, in premultiplied colour so
// that transparent pixels weigh nothing. Rows are converted one at a time into a
// small buffer by image/draw, which has fast paths for the decoders' own types; the
// k-1 rows and columns at most that do not fill a block are left out.
func shrink(img image.Image, k int) *image.RGBA {
	b := img.Bounds()
	w, h := b.Dx()/k, b.Dy()/k
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	row := image.NewRGBA(image.Rect(0, 0, w*k, 1))
	sums := make([]uint32, w*4)
	n := uint32(k * k)
	for oy := range h {
		clear(sums)
		for y := b.Min.Y + oy*k; y < b.Min.Y+(oy+1)*k; y++ {
			draw.Draw(row, row.Bounds(), img, image.Pt(b.Min.X, y), draw.Src)
			for ox := range w {
				block, sum := row.Pix[ox*k*4:(ox+1)*k*4], sums[ox*4:ox*4+4]
				for j := 0; j < len(block); j += 4 {
					sum[0] += uint32(block[j])
					sum[1] += uint32(block[j+1])
					sum[2] += uint32(block[j+2])
					sum[3] += uint32(block[j+3])
				}
			}
		}
		line := out.Pix[oy*out.Stride : oy*out.Stride+w*4]
		for i, sum := range sums {
			line[i] = uint8((sum + n/2) / n)
		}
	}
	return out
}

// orient turns an image upright for an EXIF orientation (1–8).
func orient(src *image.RGBA, o int) *image.RGBA {
	if o <= 1 || o > 8 {
		return src
	}
	b := src.Bounds()
	w, h := b.Dx(), b.Dy()
	if o >= 5 { // 5–8 swap the axes
		w, h = h, w
	}
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	sw, sh := b.Dx(), b.Dy()
	for y := range sh {
		for x := range sw {
			var dx, dy int
			switch o {
			case 2:
				dx, dy = sw-1-x, y
			case 3:
				dx, dy = sw-1-x, sh-1-y
			case 4:
				dx, dy = x, sh-1-y
			case 5:
				dx, dy = y, x
			case 6:
				dx, dy = sh-1-y, x
			case 7:
				dx, dy = sh-1-y, sw-1-x
			case 8:
				dx, dy = y, sw-1-x
			}
			i, j := src.PixOffset(x, y), dst.PixOffset(dx, dy)
			copy(dst.Pix[j:j+4], src.Pix[i:i+4])
		}
	}
	return dst
}

// jpegOrientation finds the EXIF orientation tag in a JPEG's APP1 segment; 1 (as
// stored) when there is none or it cannot be read.
func jpegOrientation(data []byte) int {
	i := 2
	for i+4 <= len(data) && data[i] == 0xff {
		marker := data[i+1]
		size := int(data[i+2])<<8 | int(data[i+3])
		if marker == 0xda || size < 2 || i+2+size > len(data) { // start of scan: no more headers
			return 1
		}
		seg := data[i+4 : i+2+size]
		if marker == 0xe1 && len(seg) > 14 && string(seg[:6]) == "Exif\x00\x00" {
			return tiffOrientation(seg[6:])
		}
		i += 2 + size
	}
	return 1
}

func tiffOrientation(t []byte) int {
	if len(t) < 8 {
		return 1
	}
	var u16 func([]byte) int
	var u32 func([]byte) int
	switch string(t[:2]) {
	case "II":
		u16 = func(b []byte) int { return int(b[0]) | int(b[1])<<8 }
		u32 = func(b []byte) int { return int(b[0]) | int(b[1])<<8 | int(b[2])<<16 | int(b[3])<<24 }
	case "MM":
		u16 = func(b []byte) int { return int(b[1]) | int(b[0])<<8 }
		u32 = func(b []byte) int { return int(b[3]) | int(b[2])<<8 | int(b[1])<<16 | int(b[0])<<24 }
	default:
		return 1
	}
	ifd := u32(t[4:8])
	if ifd < 8 || ifd+2 > len(t) {
		return 1
	}
	n := u16(t[ifd:])
	for k := range n {
		e := ifd + 2 + 12*k
		if e+12 > len(t) {
			return 1
		}
		if u16(t[e:]) == 0x0112 { // Orientation, a SHORT stored in the value field
			if o := u16(t[e+8:]); o >= 1 && o <= 8 {
				return o
			}
			return 1
		}
	}
	return 1
}
