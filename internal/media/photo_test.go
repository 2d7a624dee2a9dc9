package media_test

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"testing"

	"github.com/kinlink/kinlink/internal/media"
)

func jpegOf(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), 90, 255})
		}
	}
	var b bytes.Buffer
	jpeg.Encode(&b, img, nil)
	return b.Bytes()
}

// withExif puts an EXIF segment after the JPEG's start marker: camera make,
// orientation 6 (turn right to stand upright) and a GPS position.
func withExif(jpg []byte) []byte {
	le := binary.LittleEndian
	var t bytes.Buffer
	t.WriteString("II*\x00")
	binary.Write(&t, le, uint32(8))
	// IFD0 at 8: three entries, then the next-IFD pointer.
	entry := func(tag, typ uint16, count, value uint32) {
		binary.Write(&t, le, tag)
		binary.Write(&t, le, typ)
		binary.Write(&t, le, count)
		binary.Write(&t, le, value)
	}
	ifd0 := 8
	makeAt := uint32(ifd0 + 2 + 3*12 + 4)
	gpsAt := makeAt + 16
	binary.Write(&t, le, uint16(3))
	entry(0x010f, 2, 10, makeAt)    // Make
	entry(0x0112, 3, 1, 6)          // Orientation
	entry(0x8825, 4, 1, gpsAt)      // GPS IFD
	binary.Write(&t, le, uint32(0)) // no next IFD
	t.WriteString("Canon EOS\x00\x00\x00\x00\x00\x00\x00")
	binary.Write(&t, le, uint16(1))
	entry(0x0002, 5, 3, 0x4e4e4e4e) // GPSLatitude (value is nonsense; only its presence matters)
	binary.Write(&t, le, uint32(0))
	seg := append([]byte("Exif\x00\x00"), t.Bytes()...)
	app1 := []byte{0xff, 0xe1, byte((len(seg) + 2) >> 8), byte(len(seg) + 2)}
	out := append([]byte{}, jpg[:2]...)
	out = append(out, app1...)
	out = append(out, seg...)
	return append(out, jpg[2:]...)
}

func TestPhotoLosesMetadataAndStandsUpright(t *testing.T) {
	in := withExif(jpegOf(t, 300, 200))
	if !bytes.Contains(in, []byte("Canon")) {
		t.Fatal("the test photo has no EXIF")
	}
	p, err := media.ProcessPhoto(bytes.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(p.Data, []byte("Exif")) || bytes.Contains(p.Data, []byte("Canon")) || bytes.Contains(p.Data, []byte("NNNN")) {
		t.Errorf("metadata survived re-encoding")
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
	p, err := media.ProcessPhoto(&big)
	if err != nil || p.Width != 2048 || p.Height != 499 {
		t.Fatalf("a wide PNG: %dx%d %v", p.Width, p.Height, err)
	}
	// A 1×1 lossless WebP.
	webp, _ := base64.StdEncoding.DecodeString("UklGRhoAAABXRUJQVlA4TA0AAAAvAAAAEAcQERGIiP4HAA==")
	if p, err := media.ProcessPhoto(bytes.NewReader(webp)); err != nil || p.Width != 1 {
		t.Errorf("a WebP: %+v %v", p, err)
	}
	for name, data := range map[string][]byte{
		"a script named photo.jpg": []byte("#!/bin/sh\nrm -rf /\n"),
		"a PDF":                    []byte("%PDF-1.7\n..."),
		"a GIF":                    []byte("GIF89a\x01\x00\x01\x00"),
	} {
		if _, err := media.ProcessPhoto(bytes.NewReader(data)); !errors.Is(err, media.ErrNotImage) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := media.ProcessPhoto(bytes.NewReader(jpegOf(t, 10, 10)[:40])); !errors.Is(err, media.ErrBroken) {
		t.Errorf("a cut-off JPEG: %v", err)
	}
	if _, err := media.ProcessPhoto(bytes.NewReader(make([]byte, media.MaxPhotoBytes+1))); !errors.Is(err, media.ErrTooLarge) {
		t.Errorf("11 MB: %v", err)
	}
}

// A decompression bomb: a tiny PNG whose header claims 60,000 × 60,000 pixels is
// refused from the header, before any pixel memory is taken.
func TestImageBombIsRefusedBeforeDecoding(t *testing.T) {
	var b bytes.Buffer
	png.Encode(&b, image.NewGray(image.Rect(0, 0, 1, 1)))
	data := b.Bytes()
	binary.BigEndian.PutUint32(data[16:], 60000) // IHDR width
	binary.BigEndian.PutUint32(data[20:], 60000) // IHDR height
	binary.BigEndian.PutUint32(data[29:], crc32.ChecksumIEEE(data[12:29]))
	var before, after runtimeMem
	before.read()
	_, err := media.ProcessPhoto(bytes.NewReader(data))
	after.read()
	if !errors.Is(err, media.ErrTooManyPixels) {
		t.Fatalf("bomb: %v", err)
	}
	if grew := after.total - before.total; grew > 64<<20 {
		t.Errorf("refusing the bomb allocated %d MB", grew>>20)
	}
}
