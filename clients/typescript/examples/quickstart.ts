// Run: CIRCLE_* settings in the environment, `circle-bridge` on PATH, then `node dist/examples/quickstart.js`.
import { CircleBridgeError, spawn } from "circle-bridge-client";

async function main(): Promise<void> {
  const client = await spawn({ clientName: "quickstart" }); // runs `circle-bridge serve --stdio`
  try {
    console.log(`connected to ${client.serverInfo.name} ${client.serverInfo.version}`);
    const { circles } = await client.circle.enumCircles();
    for (const circle of circles) {
      const { topics } = await client.circle.enumTopics({ circleId: circle.circleId });
      console.log(`${circle.circleName ?? circle.circleId}: ${topics.map((t) => t.topicName ?? t.topicId).join(", ")}`);
    }
    await client.circle.enumTopics({ circleId: "no-such-circle" });
  } catch (error) {
    if (!(error instanceof CircleBridgeError)) throw error;
    console.log(`${error.name} (${error.code}): ${JSON.stringify(error.data)}`);
  } finally {
    console.log(`bridge exit code: ${await client.close()}`);
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
