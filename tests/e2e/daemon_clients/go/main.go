// Command daemonclients runs N Go clients at once, each through the client's attach-or-start mode
// (Attach with TransportConnect, which runs `circle-bridge connect`; the bridge command is
// argv[1]), and prints one line per client: "ok <circles>" or "error <text>".
// tests/e2e/test_daemon.py uses it to show that Go apps share the daemon's session.
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/circle-bridge/circle-bridge/clients/go/circlebridge"
)

func main() {
	bridge := os.Args[1]
	n, err := strconv.Atoi(os.Args[2])
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	results := make([]string, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := circlebridge.Attach(ctx, circlebridge.TransportConnect, circlebridge.Options{Command: bridge})
			if err != nil {
				results[i] = "error " + err.Error()
				return
			}
			circles, err := c.Circle.EnumCircles(ctx)
			if err != nil {
				results[i] = "error " + err.Error()
				_ = c.Shutdown(ctx)
				return
			}
			if err := c.Shutdown(ctx); err != nil {
				results[i] = "error close: " + err.Error()
				return
			}
			results[i] = fmt.Sprintf("ok %d", len(circles.Circles))
		}(i)
	}
	wg.Wait()
	for _, line := range results {
		fmt.Println(line)
	}
}
