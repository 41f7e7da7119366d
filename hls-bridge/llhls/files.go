package llhls

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

func (s *Stream) serveInit(w http.ResponseWriter, r *http.Request, t *track, file string) {
	in := t.view.Load().initNamed(file)
	if in == nil {
		s.fail(w, http.StatusNotFound, "no such init section")
		return
	}
	cache := cacheMedia
	if file == "init.mp4" {
		cache = cacheAlias
	}
	s.serveMedia(w, r, t, cache, [][]byte{in.data})
}

func (s *Stream) serveSegment(w http.ResponseWriter, r *http.Request, t *track, file string) {
	msn, err := strconv.ParseUint(trimName(file, "seg-", ".m4s"), 10, 64)
	var seg *segment
	if err == nil {
		seg = t.view.Load().segment(msn)
	}
	if seg == nil || seg.gap {
		s.fail(w, http.StatusNotFound, "no such segment")
		return
	}
	// A segment is its parts back to back.
	data := make([][]byte, len(seg.parts))
	for i, p := range seg.parts {
		data[i] = p.data
	}
	s.serveMedia(w, r, t, cacheMedia, data)
}

// servePart serves a part; a request for the part the preload hint names
// waits until it is complete.
func (s *Stream) servePart(w http.ResponseWriter, r *http.Request, t *track, file string) {
	msnText, nText, _ := strings.Cut(trimName(file, "part-", ".m4s"), "-")
	msn, err1 := strconv.ParseUint(msnText, 10, 64)
	n, err2 := strconv.Atoi(nText)
	if err1 != nil || err2 != nil {
		s.fail(w, http.StatusNotFound, "no such part")
		return
	}
	v := t.view.Load()
	p := v.part(msn, n)
	if hm, hn, ok := v.hint(); p == nil && ok && hm == msn && hn == n {
		v, err := s.await(r.Context(), t, func(v *view) bool { return v.hasPart(msn, n) })
		if err != nil {
			s.failWait(w, err)
			return
		}
		p = v.part(msn, n)
	}
	if p == nil {
		s.fail(w, http.StatusNotFound, "no such part")
		return
	}
	s.serveMedia(w, r, t, cacheMedia, [][]byte{p.data})
}

func trimName(file, prefix, suffix string) string {
	return strings.TrimSuffix(strings.TrimPrefix(file, prefix), suffix)
}

func (s *Stream) serveMedia(w http.ResponseWriter, r *http.Request, t *track, cache string, data [][]byte) {
	h := w.Header()
	h.Set("Cache-Control", cache)
	if t.video {
		h.Set("Content-Type", "video/mp4")
	} else {
		h.Set("Content-Type", "audio/mp4")
	}
	http.ServeContent(&countingWriter{ResponseWriter: w, n: &s.stats.bytes}, r, "", time.Time{}, newChunks(data))
}

// countingWriter counts the body bytes written.
type countingWriter struct {
	http.ResponseWriter
	n *atomic.Uint64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n.Add(uint64(n))
	return n, err
}

// chunks reads byte slices back to back, with Seek for range requests.
type chunks struct {
	data [][]byte
	size int64
	off  int64
}

func newChunks(data [][]byte) *chunks {
	c := &chunks{data: data}
	for _, d := range data {
		c.size += int64(len(d))
	}
	return c
}

func (c *chunks) Read(b []byte) (int, error) {
	if c.off >= c.size {
		return 0, io.EOF
	}
	n, skip := 0, c.off
	for _, d := range c.data {
		if skip >= int64(len(d)) {
			skip -= int64(len(d))
			continue
		}
		k := copy(b[n:], d[skip:])
		n, skip = n+k, 0
		if n == len(b) {
			break
		}
	}
	c.off += int64(n)
	return n, nil
}

func (c *chunks) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += c.off
	case io.SeekEnd:
		offset += c.size
	}
	if offset < 0 {
		return 0, errors.New("seek before start")
	}
	c.off = offset
	return offset, nil
}
