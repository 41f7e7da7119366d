package transcode

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// process is a started ffmpeg with its pipes: Matroska goes into stdin,
// MPEG-TS comes out of outputs (pipe:3, pipe:4, …), log lines out of stderr.
// The caller owns the parent's ends and closes them.
type process struct {
	cmd     *exec.Cmd
	stdin   *os.File
	outputs []*os.File
	stderr  *os.File
}

// startProcess starts path with args and nOutputs extra output pipes. When
// ctx ends the process is killed.
func startProcess(ctx context.Context, path string, args []string, nOutputs int) (*process, error) {
	var parent, child []*os.File
	closeAll := func() {
		for _, f := range append(parent, child...) {
			_ = f.Close()
		}
	}
	pipe := func(childReads bool) (*os.File, error) {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		if childReads {
			parent, child = append(parent, w), append(child, r)
			return w, nil
		}
		parent, child = append(parent, r), append(child, w)
		return r, nil
	}

	p := &process{cmd: exec.CommandContext(ctx, path, args...)}
	var err error
	if p.stdin, err = pipe(true); err != nil {
		closeAll()
		return nil, fmt.Errorf("transcode: stdin pipe: %w", err)
	}
	if p.stderr, err = pipe(false); err != nil {
		closeAll()
		return nil, fmt.Errorf("transcode: stderr pipe: %w", err)
	}
	for range nOutputs {
		out, err := pipe(false)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("transcode: output pipe: %w", err)
		}
		p.outputs = append(p.outputs, out)
		p.cmd.ExtraFiles = append(p.cmd.ExtraFiles, child[len(child)-1])
	}
	p.cmd.Stdin, p.cmd.Stderr = child[0], child[1]
	if err := p.cmd.Start(); err != nil {
		closeAll()
		return nil, fmt.Errorf("transcode: start %s: %w", path, err)
	}
	// Only the child holds these ends now, so readers see EOF when it exits.
	for _, f := range child {
		_ = f.Close()
	}
	return p, nil
}

// closeOutputs closes the parent's read ends and stderr.
func (p *process) closeOutputs() {
	for _, f := range p.outputs {
		_ = f.Close()
	}
	_ = p.stderr.Close()
}

// commandLine renders args for logs, quoting what a shell would need.
func commandLine(path string, args []string) string {
	var b strings.Builder
	b.WriteString(path)
	for _, a := range args {
		b.WriteByte(' ')
		if strings.ContainsAny(a, " ;()[]'\"*$&|<>") && !strings.HasPrefix(a, "pipe:") {
			b.WriteString("'" + strings.ReplaceAll(a, "'", `'\''`) + "'")
			continue
		}
		b.WriteString(a)
	}
	return b.String()
}
