// Package llhls packages a live transcoded ladder into CMAF fMP4 and serves
// it as a Low-Latency HLS origin (RFC 8216bis): a multivariant playlist, one
// media playlist per rendition plus one for audio, init sections, segments
// and parts, with blocking playlist reload, preload hints, rendition reports
// and delta updates.
//
// Every track is cut on one time grid: segment msn starts at the same input
// instant in every rendition and in the audio track, and part n of it covers
// the same span (to within a frame), so media sequence numbers and part
// indices line up across the ladder. Parts are cut on sample boundaries at
// or after the grid lines, so a part holds whole frames and a playlist's
// PART-TARGET is the configured part target rounded up to whole frames (or
// AAC frames) of that track.
//
// URL layout, relative to the stream root the handler is mounted on:
//
//	index.m3u8                    multivariant playlist
//	{name}/index.m3u8             media playlist ({name} is a rendition or "audio")
//	{name}/init.mp4               the newest init section
//	{name}/init-{msn}.mp4         init section first used by segment msn
//	{name}/seg-{msn}.m4s          segment
//	{name}/part-{msn}-{n}.m4s     part n of segment msn
//
// Media sequence numbers start at the stream's start time divided by the
// segment target, so a stream restarted on the same path never reuses a URL
// that a CDN may still hold.
package llhls
