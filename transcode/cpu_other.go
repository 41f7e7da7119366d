//go:build !linux

package transcode

import "time"

// processCPU is only measured on Linux, while the process runs; exited
// processes are counted everywhere from their rusage.
func processCPU(int) time.Duration { return 0 }
