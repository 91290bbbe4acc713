// keyclient drives a keyserver with the key client Apptainer links
// (github.com/apptainer/container-key-client, as packaged by Debian), the way
// `apptainer key push|pull|search` call it. A test tool, not product code.
//
//	keyclient --url BASE [--token T] push FILE
//	keyclient --url BASE [--token T] get HEX        (fingerprint or key ID; prints the armored key)
//	keyclient --url BASE [--token T] search TEXT    (op=index, options=mr, fingerprint=on; prints the answer)
package main

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/apptainer/container-key-client/client"
)

func main() {
	url := flag.String("url", "", "keyserver base URL")
	token := flag.String("token", "", "bearer token")
	flag.Parse()
	args := flag.Args()
	if len(args) < 2 || *url == "" {
		fmt.Fprintln(os.Stderr, "usage: keyclient --url BASE [--token T] push FILE | get HEX | search TEXT")
		os.Exit(2)
	}
	opts := []client.Option{client.OptBaseURL(*url), client.OptUserAgent("Apptainer/1.0.0 (Linux amd64) Go/1.19")}
	if *token != "" {
		opts = append(opts, client.OptBearerToken(*token))
	}
	c, err := client.NewClient(opts...)
	if err != nil {
		fail(err)
	}
	ctx := context.Background()
	switch args[0] {
	case "push":
		text, err := os.ReadFile(args[1])
		if err != nil {
			fail(err)
		}
		if err := c.PKSAdd(ctx, string(text)); err != nil {
			fail(err)
		}
		fmt.Println("key pushed")
	case "get":
		raw, err := hex.DecodeString(strings.TrimPrefix(strings.ToLower(args[1]), "0x"))
		if err != nil {
			fail(err)
		}
		key, err := c.GetKey(ctx, raw)
		if err != nil {
			fail(err)
		}
		fmt.Print(key)
	case "search":
		pd := &client.PageDetails{Size: 256}
		res, err := c.PKSLookup(ctx, pd, args[1], client.OperationIndex, true, false, []string{client.OptionMachineReadable})
		if err != nil {
			fail(err)
		}
		fmt.Print(res)
	default:
		fmt.Fprintln(os.Stderr, "unknown command", args[0])
		os.Exit(2)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "FATAL:", err)
	os.Exit(255)
}
