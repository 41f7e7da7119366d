package transcode

import (
	"fmt"
	"math"
)

// DefaultLadder is the full LL-HLS ladder, largest first. Height is the
// short side of the picture; widths are for 16:9 and are recomputed by Fit
// from the source's aspect ratio.
var DefaultLadder = []Rendition{
	{Name: "1080p", Width: 1920, Height: 1080, Bitrate: 5_000_000},
	{Name: "720p", Width: 1280, Height: 720, Bitrate: 2_800_000},
	{Name: "480p", Width: 854, Height: 480, Bitrate: 1_200_000},
	{Name: "360p", Width: 640, Height: 360, Bitrate: 700_000},
}

// Fit returns the rungs of ladder that suit a srcW×srcH source: none larger
// than the source (a rung's Height is compared with the source's short
// side, so portrait sources work too), each with the source's aspect ratio
// and even dimensions. It always returns at least one rung: when the source
// is smaller than every rung, the source size itself, named after its short
// side, with the smallest rung's bitrate scaled by area. It returns nil only
// for an empty ladder or a source without size.
func Fit(ladder []Rendition, srcW, srcH int) []Rendition {
	if len(ladder) == 0 || srcW <= 0 || srcH <= 0 {
		return nil
	}
	short := min(srcW, srcH)
	var out []Rendition
	smallest := ladder[0]
	for _, r := range ladder {
		if r.Height < smallest.Height {
			smallest = r
		}
		if r.Height > short {
			continue
		}
		r.Width, r.Height = scaleShortSide(srcW, srcH, r.Height)
		out = append(out, r)
	}
	if len(out) > 0 {
		return out
	}
	w, h := max(2, srcW&^1), max(2, srcH&^1)
	r := smallest
	r.Name = fmt.Sprintf("%dp", min(w, h))
	if area := smallest.Width * smallest.Height; area > 0 {
		r.Bitrate = int(float64(smallest.Bitrate) * float64(w*h) / float64(area))
	}
	r.Width, r.Height = w, h
	return []Rendition{r}
}

// scaleShortSide sizes a srcW×srcH picture so that its short side is
// short, keeping the aspect ratio, both sides even.
func scaleShortSide(srcW, srcH, short int) (w, h int) {
	if srcH <= srcW {
		return even(float64(srcW) * float64(short) / float64(srcH)), even(float64(short))
	}
	return even(float64(short)), even(float64(srcH) * float64(short) / float64(srcW))
}

// even rounds x to the nearest even integer, at least 2.
func even(x float64) int {
	return max(2, 2*int(math.Round(x/2)))
}
