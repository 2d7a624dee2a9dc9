// Package mediatest makes the images the tests upload: a phone-like JPEG with
// camera and GPS metadata, and a decompression bomb.
package mediatest

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
)

// JPEG is a w×h JPEG with a colour gradient and no metadata.
func JPEG(w, h int) []byte {
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

// Marks are the byte strings of the metadata PhoneJPEG carries; none may survive
// re-encoding.
var Marks = [][]byte{[]byte("Exif"), []byte("Canon EOS"), []byte("NNNN")}

// PhoneJPEG is a w×h JPEG as a phone writes it: an EXIF segment with the camera
// make ("Canon EOS"), orientation 6 (turn right to stand upright) and a GPS
// position (its value bytes are "NNNN").
func PhoneJPEG(w, h int) []byte {
	jpg := JPEG(w, h)
	le := binary.LittleEndian
	var t bytes.Buffer
	t.WriteString("II*\x00")
	binary.Write(&t, le, uint32(8))
	entry := func(tag, typ uint16, count, value uint32) {
		binary.Write(&t, le, tag)
		binary.Write(&t, le, typ)
		binary.Write(&t, le, count)
		binary.Write(&t, le, value)
	}
	makeAt := uint32(8 + 2 + 3*12 + 4)
	gpsAt := makeAt + 16
	binary.Write(&t, le, uint16(3))
	entry(0x010f, 2, 10, makeAt)    // Make
	entry(0x0112, 3, 1, 6)          // Orientation
	entry(0x8825, 4, 1, gpsAt)      // GPS IFD
	binary.Write(&t, le, uint32(0)) // no next IFD
	t.WriteString("Canon EOS\x00\x00\x00\x00\x00\x00\x00")
	binary.Write(&t, le, uint16(1))
	entry(0x0002, 5, 3, 0x4e4e4e4e) // GPSLatitude
	binary.Write(&t, le, uint32(0))
	seg := append([]byte("Exif\x00\x00"), t.Bytes()...)
	out := append([]byte{}, jpg[:2]...)
	out = append(out, 0xff, 0xe1, byte((len(seg)+2)>>8), byte(len(seg)+2))
	out = append(out, seg...)
	return append(out, jpg[2:]...)
}

// PNGBomb is a valid, tiny PNG whose header claims side×side pixels.
func PNGBomb(side uint32) []byte {
	var b bytes.Buffer
	png.Encode(&b, image.NewGray(image.Rect(0, 0, 1, 1)))
	data := b.Bytes()
	binary.BigEndian.PutUint32(data[16:], side) // IHDR width
	binary.BigEndian.PutUint32(data[20:], side) // IHDR height
	binary.BigEndian.PutUint32(data[29:], crc32.ChecksumIEEE(data[12:29]))
	return data
}
