package transcode

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// Matroska element IDs (RFC 9559), with their length markers.
const (
	idEBML               = 0x1A45DFA3
	idEBMLVersion        = 0x4286
	idEBMLReadVersion    = 0x42F7
	idEBMLMaxIDLength    = 0x42F2
	idEBMLMaxSizeLength  = 0x42F3
	idDocType            = 0x4282
	idDocTypeVersion     = 0x4287
	idDocTypeReadVersion = 0x4285
	idSegment            = 0x18538067
	idInfo               = 0x1549A966
	idTimestampScale     = 0x2AD7B1
	idMuxingApp          = 0x4D80
	idWritingApp         = 0x5741
	idTracks             = 0x1654AE6B
	idTrackEntry         = 0xAE
	idTrackNumber        = 0xD7
	idTrackUID           = 0x73C5
	idTrackType          = 0x83
	idCodecID            = 0x86
	idCodecPrivate       = 0x63A2
	idDefaultDuration    = 0x23E383
	idVideo              = 0xE0
	idPixelWidth         = 0xB0
	idPixelHeight        = 0xBA
	idAudio              = 0xE1
	idSamplingFrequency  = 0xB5
	idChannels           = 0x9F
	idCluster            = 0x1F43B675
	idTimestamp          = 0xE7
	idSimpleBlock        = 0xA3
)

// unknownSize is the 8-byte EBML size "unknown", for live Segments and
// Clusters whose end is not known when they start.
var unknownSize = []byte{0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}

// mkvTrack describes one track of the stream. Track numbers are the index
// in the header's list plus one.
type mkvTrack struct {
	codecID         string // "V_VP8", "A_OPUS", …
	codecPrivate    []byte
	video           bool
	width, height   int
	defaultDuration time.Duration // video frame duration when known
	sampleRate      float64
	channels        int
}

// mkvWriter writes a live Matroska stream: a header, then SimpleBlocks in
// Clusters of unknown size, with 1 ms timestamps. A new Cluster starts when
// asked (at video keyframes) and whenever a block's timestamp would not fit
// the signed 16-bit offset from its Cluster's timestamp. It is not safe for
// concurrent use.
type mkvWriter struct {
	w         *bufio.Writer
	inCluster bool
	clusterTS int64 // ms
	hdr       [32]byte
}

func newMKVWriter(w *bufio.Writer) *mkvWriter { return &mkvWriter{w: w} }

// writeHeader writes the EBML header, the start of the Segment, Info and
// Tracks.
func (m *mkvWriter) writeHeader(tracks []mkvTrack) error {
	var ebml, info, trs []byte
	ebml = appendUint(ebml, idEBMLVersion, 1)
	ebml = appendUint(ebml, idEBMLReadVersion, 1)
	ebml = appendUint(ebml, idEBMLMaxIDLength, 4)
	ebml = appendUint(ebml, idEBMLMaxSizeLength, 8)
	ebml = appendString(ebml, idDocType, "matroska")
	ebml = appendUint(ebml, idDocTypeVersion, 4)
	ebml = appendUint(ebml, idDocTypeReadVersion, 2)

	info = appendUint(info, idTimestampScale, uint64(time.Millisecond))
	info = appendString(info, idMuxingApp, "starling")
	info = appendString(info, idWritingApp, "starling")

	for i, t := range tracks {
		trs = appendElement(trs, idTrackEntry, trackEntry(i+1, t))
	}

	var b []byte
	b = appendElement(b, idEBML, ebml)
	b = appendID(b, idSegment)
	b = append(b, unknownSize...)
	b = appendElement(b, idInfo, info)
	b = appendElement(b, idTracks, trs)
	m.inCluster = false
	_, err := m.w.Write(b)
	return err
}

func trackEntry(number int, t mkvTrack) []byte {
	var e []byte
	e = appendUint(e, idTrackNumber, uint64(number))
	e = appendUint(e, idTrackUID, uint64(number))
	typ := uint64(2)
	if t.video {
		typ = 1
	}
	e = appendUint(e, idTrackType, typ)
	e = appendString(e, idCodecID, t.codecID)
	if len(t.codecPrivate) > 0 {
		e = appendElement(e, idCodecPrivate, t.codecPrivate)
	}
	if t.video {
		if t.defaultDuration > 0 {
			e = appendUint(e, idDefaultDuration, uint64(t.defaultDuration))
		}
		var v []byte
		v = appendUint(v, idPixelWidth, uint64(t.width))
		v = appendUint(v, idPixelHeight, uint64(t.height))
		return appendElement(e, idVideo, v)
	}
	var a []byte
	a = appendFloat(a, idSamplingFrequency, t.sampleRate)
	a = appendUint(a, idChannels, uint64(t.channels))
	return appendElement(e, idAudio, a)
}

// writeBlock writes one frame of track (1-based) at ts milliseconds.
// newCluster starts a Cluster at this block; one also starts when ts is
// out of reach of the current Cluster's timestamp.
func (m *mkvWriter) writeBlock(track int, ts int64, key, newCluster bool, data []byte) error {
	if ts < 0 {
		return fmt.Errorf("mkv: negative timestamp %d ms", ts)
	}
	rel := ts - m.clusterTS
	if newCluster || !m.inCluster || rel < math.MinInt16 || rel > math.MaxInt16 {
		b := appendID(m.hdr[:0], idCluster)
		b = append(b, unknownSize...)
		b = appendUint(b, idTimestamp, uint64(ts))
		if _, err := m.w.Write(b); err != nil {
			return err
		}
		m.inCluster, m.clusterTS, rel = true, ts, 0
	}
	b := appendID(m.hdr[:0], idSimpleBlock)
	b = appendSize(b, uint64(4+len(data)))
	b = append(b, 0x80|byte(track))
	b = binary.BigEndian.AppendUint16(b, uint16(int16(rel)))
	flags := byte(0)
	if key {
		flags = 0x80
	}
	b = append(b, flags)
	if _, err := m.w.Write(b); err != nil {
		return err
	}
	_, err := m.w.Write(data)
	return err
}

func appendID(b []byte, id uint32) []byte {
	switch {
	case id >= 1<<24:
		return append(b, byte(id>>24), byte(id>>16), byte(id>>8), byte(id))
	case id >= 1<<16:
		return append(b, byte(id>>16), byte(id>>8), byte(id))
	case id >= 1<<8:
		return append(b, byte(id>>8), byte(id))
	}
	return append(b, byte(id))
}

// appendSize appends v as an EBML variable-size integer of minimal length.
// A length of n bytes holds up to 2^(7n)-2; all ones means "unknown".
func appendSize(b []byte, v uint64) []byte {
	n := 1
	for n < 8 && v >= 1<<(7*n)-1 {
		n++
	}
	v |= 1 << (7 * n)
	for i := n - 1; i >= 0; i-- {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

func appendElement(b []byte, id uint32, payload []byte) []byte {
	b = appendID(b, id)
	b = appendSize(b, uint64(len(payload)))
	return append(b, payload...)
}

func appendUint(b []byte, id uint32, v uint64) []byte {
	n := 1
	for n < 8 && v>>(8*n) != 0 {
		n++
	}
	b = appendID(b, id)
	b = appendSize(b, uint64(n))
	for i := n - 1; i >= 0; i-- {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

func appendString(b []byte, id uint32, s string) []byte {
	return appendElement(b, id, []byte(s))
}

func appendFloat(b []byte, id uint32, f float64) []byte {
	return appendElement(b, id, binary.BigEndian.AppendUint64(nil, math.Float64bits(f)))
}

// opusHead is the Opus identification header (RFC 7845 §5.1) for a 48 kHz
// stereo stream without pre-skip: WebRTC Opus starts decoding at once.
func opusHead() []byte {
	b := []byte("OpusHead")
	b = append(b, 1, 2)                            // version, channels
	b = binary.LittleEndian.AppendUint16(b, 0)     // pre-skip
	b = binary.LittleEndian.AppendUint32(b, 48000) // input sample rate
	b = binary.LittleEndian.AppendUint16(b, 0)     // output gain
	return append(b, 0)                            // channel mapping family
}
