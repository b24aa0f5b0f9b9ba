package circlebridge_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/circle-bridge/circle-bridge/clients/go/circlebridge"
)

// Example lists the circles and counts their topics. The bridge reads its configuration from
// the CIRCLE_* environment variables (the tests point them at the emulator).
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := circlebridge.Spawn(ctx, circlebridge.Options{}) // runs `circle-bridge serve --stdio`
	if err != nil {
		log.Fatal(err)
	}
	circles, err := c.Circle.EnumCircles(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, circle := range circles.Circles {
		topics, err := c.Circle.EnumTopics(ctx, circlebridge.EnumTopicsParams{CircleID: circle.CircleID})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s: %d topics, %s members\n", circle.CircleName, len(topics.Topics), circle.Extra["memberCount"])
	}
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// Family Vault: 3 topics, 4 members
	// Équipe Médicale – Zürich: 2 topics, 12 members
	// 研究チーム 🔬: 4 topics, 3 members
}

// ExampleError shows how to tell the bridge's errors apart.
func ExampleError() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := circlebridge.Spawn(ctx, circlebridge.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	_, err = c.Circle.EnumTopics(ctx, circlebridge.EnumTopicsParams{CircleID: "no-such-circle"})
	var rpcErr *circlebridge.Error
	if errors.As(err, &rpcErr) && rpcErr.Code == circlebridge.CodeCircleOperationFailed {
		fmt.Println(rpcErr.Name(), rpcErr.Code, "retryable:", rpcErr.Retryable())
	}
	// Output: CircleOperationFailed -33004 retryable: false
}

// ExampleAttach shares this user's daemon with every other app: one token, one session. With
// TransportConnect it runs `circle-bridge connect`, which starts the daemon if none runs.
// (Compiled, not run: it would leave a daemon behind; daemon_test.go runs it in a private dir.)
func ExampleAttach() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := circlebridge.Attach(ctx, circlebridge.TransportConnect, circlebridge.Options{
		OnProgress: func(p circlebridge.ProgressParams) { log.Printf("%s: %s", p.Token, p.Value.Kind) },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close() // ends this connection only; the daemon serves the other apps
	created, err := c.Circle.CreateCircle(ctx, circlebridge.CreateCircleParams{
		CircleName:    "Book club",
		WorkDoneToken: json.RawMessage(`"create-1"`),
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(created.CircleID)
}
