// Command list prints the circles of the configured Circle user and the topics of each, through
// a circle-bridge it starts. Configure the bridge with the CIRCLE_* environment variables; the
// bridge executable is $CIRCLE_BRIDGE_BIN, else circle-bridge from PATH.
package main

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/circle-bridge/circle-bridge/clients/go/circlebridge"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := circlebridge.Spawn(ctx, circlebridge.Options{})
	if err != nil {
		log.Fatal(err)
	}
	circles, err := c.Circle.EnumCircles(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, circle := range circles.Circles {
		fmt.Println(circle.CircleName)
		topics, err := c.Circle.EnumTopics(ctx, circlebridge.EnumTopicsParams{CircleID: circle.CircleID})
		if err != nil {
			log.Fatal(err)
		}
		for _, topic := range topics.Topics {
			fmt.Println("  -", topic.TopicName)
		}
	}
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
}
