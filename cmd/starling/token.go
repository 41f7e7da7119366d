package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/livekit/protocol/auth"
)

// token prints a JWT access token for a room.
func token(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	room := fs.String("room", "", "room the token is valid for (required)")
	identity := fs.String("identity", "", "participant identity (required)")
	name := fs.String("name", "", "display name")
	publish := fs.Bool("publish", false, "allow publishing (WHIP, camera/mic)")
	subscribe := fs.Bool("subscribe", true, "allow subscribing (WHEP, watching)")
	data := fs.Bool("data", true, "allow sending data and chat messages")
	admin := fs.Bool("admin", false, "allow administering the room (room service)")
	create := fs.Bool("create", false, "allow creating and deleting rooms (room service)")
	list := fs.Bool("list", false, "allow listing rooms (room service)")
	hidden := fs.Bool("hidden", false, "join rooms without being listed to others")
	sources := fs.String("sources", "", "comma-separated sources the token may publish: camera, microphone, screen_share, screen_share_audio (default all)")
	ttl := fs.Duration("ttl", 6*time.Hour, "how long the token is valid")
	key := fs.String("key", "", "API key to sign with (default: the first configured key)")
	cfg, err := loadConfig(fs, args)
	if err != nil {
		return err
	}
	if *room == "" || *identity == "" {
		return errors.New("token: -room and -identity are required")
	}
	if len(cfg.Keys) == 0 {
		return errors.New("token: no API keys configured (use -keys key:secret, STARLING_KEYS or a config file)")
	}
	k := *key
	if k == "" {
		names := make([]string, 0, len(cfg.Keys))
		for n := range cfg.Keys {
			names = append(names, n)
		}
		sort.Strings(names)
		k = names[0]
	}
	secret, ok := cfg.Keys[k]
	if !ok {
		return fmt.Errorf("token: unknown key %q", k)
	}
	g := grants{publish: *publish, subscribe: *subscribe, data: *data, admin: *admin, create: *create, list: *list, hidden: *hidden}
	for _, s := range strings.Split(*sources, ",") {
		if s = strings.TrimSpace(s); s != "" {
			g.sources = append(g.sources, s)
		}
	}
	jwt, err := mintToken(k, secret, *room, *identity, *name, g, *ttl)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(out, jwt)
	return err
}

type grants struct {
	publish, subscribe, data, admin bool
	// hidden participants are not listed to others; create and list are
	// the room service's roomCreate and roomList grants; sources limits
	// what may be published (camera, microphone, screen_share, …).
	hidden, create, list bool
	sources              []string
}

func mintToken(key, secret, room, identity, name string, g grants, ttl time.Duration) (string, error) {
	vg := &auth.VideoGrant{RoomJoin: true, Room: room, RoomAdmin: g.admin, Hidden: g.hidden,
		RoomCreate: g.create, RoomList: g.list, CanPublishSources: g.sources}
	vg.SetCanPublish(g.publish)
	vg.SetCanSubscribe(g.subscribe)
	vg.SetCanPublishData(g.data)
	at := auth.NewAccessToken(key, secret).SetIdentity(identity).SetValidFor(ttl).SetVideoGrant(vg)
	if name != "" {
		at.SetName(name)
	}
	jwt, err := at.ToJWT()
	if err != nil {
		return "", fmt.Errorf("token: sign: %w", err)
	}
	return jwt, nil
}
