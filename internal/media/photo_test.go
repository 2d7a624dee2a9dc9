package media_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/jpeg"
	"image/png"
	"testing"

	"github.com/kinlink/kinlink/internal/media"
	"github.com/kinlink/kinlink/internal/media/mediatest"
)

func TestPhotoLosesMetadataAndStandsUpright(t *testing.T) {
	in := mediatest.PhoneJPEG(300, 200)
	for _, mark := range mediatest.Marks {
		if !bytes.Contains(in, mark) {
			t.Fatalf("the test photo lacks %q", mark)
		}
	}
	p, err := media.NewPhotos(media.DecodeBudget).Process(context.Background(), bytes.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	for _, mark := range mediatest.Marks {
		if bytes.Contains(p.Data, mark) {
			t.Errorf("%q survived re-encoding", mark)
		}
	}
	if p.Width != 200 || p.Height != 300 {
		t.Errorf("orientation 6 not applied: %dx%d", p.Width, p.Height)
	}
	if _, err := jpeg.Decode(bytes.NewReader(p.Data)); err != nil {
		t.Errorf("the result is not a JPEG: %v", err)
	}
}

func TestPhotoIsResizedAndFormatsAreToldByContent(t *testing.T) {
	var big bytes.Buffer
	png.Encode(&big, image.NewGray(image.Rect(0, 0, 4100, 1000)))
	p, err := media.NewPhotos(media.DecodeBudget).Process(context.Background(), &big)
	if err != nil || p.Width != 2048 || p.Height != 499 {
		t.Fatalf("a wide PNG: %dx%d %v", p.Width, p.Height, err)
	}
	// A 1×1 lossless WebP.
	webp, _ := base64.StdEncoding.DecodeString("UklGRhoAAABXRUJQVlA4TA0AAAAvAAAAEAcQERGIiP4HAA==")
	if p, err := media.NewPhotos(media.DecodeBudget).Process(context.Background(), bytes.NewReader(webp)); err != nil || p.Width != 1 {
		t.Errorf("a WebP: %+v %v", p, err)
	}
	for name, data := range map[string][]byte{
		"a script named photo.jpg": []byte("#!/bin/sh\nrm -rf /\n"),
		"a PDF":                    []byte("%PDF-1.7\n..."),
		"a GIF":                    []byte("GIF89a\x01\x00\x01\x00"),
	} {
		if _, err := media.NewPhotos(media.DecodeBudget).Process(context.Background(), bytes.NewReader(data)); !errors.Is(err, media.ErrNotImage) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := media.NewPhotos(media.DecodeBudget).Process(context.Background(), bytes.NewReader(mediatest.JPEG(10, 10)[:40])); !errors.Is(err, media.ErrBroken) {
		t.Errorf("a cut-off JPEG: %v", err)
	}
	if _, err := media.NewPhotos(media.DecodeBudget).Process(context.Background(), bytes.NewReader(make([]byte, media.MaxPhotoBytes+1))); !errors.Is(err, media.ErrTooLarge) {
		t.Errorf("11 MB: %v", err)
	}
}

// A decompression bomb: a tiny PNG whose header claims 60,000 × 60,000 pixels is
// refused from the header, before any pixel memory is taken.
func TestImageBombIsRefusedBeforeDecoding(t *testing.T) {
	data := mediatest.PNGBomb(60000)
	var before, after runtimeMem
	before.read()
	_, err := media.NewPhotos(media.DecodeBudget).Process(context.Background(), bytes.NewReader(data))
	after.read()
	if !errors.Is(err, media.ErrTooManyPixels) {
		t.Fatalf("bomb: %v", err)
	}
	if grew := after.total - before.total; grew > 64<<20 {
		t.Errorf("refusing the bomb allocated %d MB", grew>>20)
	}
}

// A 16-bit PNG is 8 bytes a pixel once decoded: within the pixel limit, 7000 × 7000
// of it would still take 400 MB, so it is refused from its header.
func TestDeepImagesAreBoundedByTheirMemory(t *testing.T) {
	var b bytes.Buffer
	png.Encode(&b, image.NewRGBA64(image.Rect(0, 0, 1, 1)))
	data := b.Bytes()
	binary.BigEndian.PutUint32(data[16:], 7000)
	binary.BigEndian.PutUint32(data[20:], 7000)
	binary.BigEndian.PutUint32(data[29:], crc32.ChecksumIEEE(data[12:29]))
	var before, after runtimeMem
	before.read()
	_, err := media.NewPhotos(media.DecodeBudget).Process(context.Background(), bytes.NewReader(data))
	after.read()
	if !errors.Is(err, media.ErrTooManyPixels) {
		t.Fatalf("a 49 MP 16-bit PNG: %v", err)
	}
	if grew := after.total - before.total; grew > 64<<20 {
		t.Errorf("refusing it allocated %d MB", grew>>20)
	}
}

// Large photos within the limits are scaled without the memory of a kernel scaler,
// whose buffer (32 bytes per destination column per source row) took 460 MB for a
// 49-megapixel photo and 200 MB for a 12-megapixel phone photo; what decoding takes
// is bounded by the budget, the rest must stay small.
func TestLargePhotosAreScaledInBoundedMemory(t *testing.T) {
	var gray bytes.Buffer
	png.Encode(&gray, image.NewGray(image.Rect(0, 0, 7000, 7000)))
	for name, c := range map[string]struct {
		data          []byte
		decoded       uint64
		width, height int
	}{
		"a 49-megapixel grey PNG":         {gray.Bytes(), 7000 * 7000, 2048, 2048},
		"a 12-megapixel phone photo":      {mediatest.JPEG(4032, 3024), 4032 * 3024 * 3 / 2, 2048, 1536},
		"a portrait photo just too large": {mediatest.JPEG(1500, 2100), 1500 * 2100 * 3 / 2, 1462, 2048},
	} {
		var before, after runtimeMem
		before.read()
		p, err := media.NewPhotos(media.DecodeBudget).Process(context.Background(), bytes.NewReader(c.data))
		after.read()
		if err != nil || p.Width != c.width || p.Height != c.height {
			t.Errorf("%s: %dx%d %v", name, p.Width, p.Height, err)
			continue
		}
		grew := after.total - before.total
		t.Logf("%s: %d MB allocated, %d MB of it decoded pixels", name, grew>>20, c.decoded>>20)
		if grew > c.decoded+96<<20 {
			t.Errorf("%s: scaling allocated %d MB besides the %d MB decoded", name, (grew-c.decoded)>>20, c.decoded>>20)
		}
	}
}

// Shrinking averages blocks of pixels, so the result keeps the photo's tones, and
// transparent pixels become white, not black.
func TestShrinkingKeepsTonesAndTransparencyIsWhite(t *testing.T) {
	img := image.NewNRGBA(image.Rect(0, 0, 6000, 3000))
	for y := range 3000 {
		for x := range 6000 {
			switch {
			case x < 3000 && (x+y)%2 == 0: // left half: black and white alternate
				img.Pix[img.PixOffset(x, y)+3] = 255
			case x < 3000:
				copy(img.Pix[img.PixOffset(x, y):], []byte{255, 255, 255, 255})
			} // right half: transparent
		}
	}
	var b bytes.Buffer
	png.Encode(&b, img)
	p, err := media.NewPhotos(media.DecodeBudget).Process(context.Background(), &b)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := jpeg.Decode(bytes.NewReader(p.Data))
	for _, c := range []struct {
		x, y     int
		min, max uint32
		what     string
	}{{500, 500, 110, 145, "the checkered half (mid grey)"}, {1500, 500, 245, 255, "the transparent half (white)"}} {
		r, _, _, _ := out.At(c.x, c.y).RGBA()
		if r>>8 < c.min || r>>8 > c.max {
			t.Errorf("%s came out at %d", c.what, r>>8)
		}
	}
}

// A very thin photo (a banner a few pixels high) keeps its pixels: shrinking stops at
// one pixel on the short side instead of leaving nothing to draw.
func TestThinPhotosKeepTheirPixels(t *testing.T) {
	for _, size := range [][2]int{{20000, 5}, {4100, 1}, {3, 9000}} {
		img := image.NewRGBA(image.Rect(0, 0, size[0], size[1]))
		for i := 0; i < len(img.Pix); i += 4 {
			img.Pix[i], img.Pix[i+3] = 255, 255 // red
		}
		var b bytes.Buffer
		png.Encode(&b, img)
		p, err := media.NewPhotos(media.DecodeBudget).Process(context.Background(), &b)
		if err != nil {
			t.Fatalf("%dx%d: %v", size[0], size[1], err)
		}
		out, _ := jpeg.Decode(bytes.NewReader(p.Data))
		if r, g, _, _ := out.At(p.Width/2, p.Height/2).RGBA(); r>>8 < 200 || g>>8 > 60 {
			t.Errorf("%dx%d came out %dx%d and not red in the middle: r=%d g=%d", size[0], size[1], p.Width, p.Height, r>>8, g>>8)
		}
	}
}
