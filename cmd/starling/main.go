// Command starling is the Starling streaming server: `starling serve` runs a
// node, `starling token` mints access tokens.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage: starling <command> [flags]

commands:
  serve     run a Starling node (WHIP, WHEP, web pages, metrics)
  token     print an access token for a room
  loadtest  simulate publishers and viewers and measure them
  hls-bridge  serve a WHEP stream as LL-HLS (a transcoding node)
  version   print the version

Run "starling <command> -h" for a command's flags.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "serve":
		err = serve(args)
	case "token":
		err = token(args, os.Stdout)
	case "loadtest":
		err = loadtestCmd(args, os.Stdout, os.Stderr)
	case "hls-bridge":
		err = hlsBridge(args)
	case "version", "-v", "--version":
		fmt.Println("starling", version)
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "starling: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if errors.Is(err, flag.ErrHelp) {
		return // the flag set printed its usage
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "starling:", err)
		os.Exit(1)
	}
}
