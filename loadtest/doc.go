// Package loadtest simulates the peers of a streaming server and measures
// what their users would feel. Its WHIP publishers and WHEP subscribers are
// real pion peer connections sending and receiving real encoded media (the
// clips of package clip); they speak only the public protocols, so they work
// against any WHIP/WHEP server, Starling or not.
package loadtest
