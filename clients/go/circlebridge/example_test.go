package circlebridge_test

import (
	"context"
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
