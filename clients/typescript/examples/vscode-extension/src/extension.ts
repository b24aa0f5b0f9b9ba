// A minimal VS Code extension on circle-bridge-client: a tree of your circles and their topics.
import * as vscode from "vscode";

import { type CircleBridgeClient, CircleBridgeError, type CircleInfo, spawn, type TopicInfo } from "circle-bridge-client";

type CircleNode =
  | { kind: "circle"; circle: CircleInfo }
  | { kind: "topic"; topic: TopicInfo }
  | { kind: "problem"; error: CircleBridgeError };

/** One bridge for the extension's lifetime, started on first use and again if it ever exits. */
class Bridge implements vscode.Disposable {
  private client: Promise<CircleBridgeClient> | undefined;

  constructor(private readonly log: vscode.OutputChannel) {}

  get(): Promise<CircleBridgeClient> {
    if (this.client === undefined) {
      const command = vscode.workspace.getConfiguration("circleBridge").get<string>("command", "circle-bridge");
      const starting = spawn({
        command,
        clientName: "vscode-circle-explorer",
        clientVersion: vscode.version,
        onStderr: (text) => this.log.append(text),
      });
      this.client = starting;
      starting.then(
        (client) => {
          this.log.appendLine(`connected to ${client.serverInfo.name} ${client.serverInfo.version}`);
          void client.closed.then((code) => {
            this.log.appendLine(`circle-bridge exited (${String(code)})`);
            if (this.client === starting) {
              this.client = undefined;
            }
          });
        },
        () => {
          this.client = undefined; // try again on the next refresh
        },
      );
    }
    return this.client;
  }

  async close(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    await (await client?.catch(() => undefined))?.close();
  }

  dispose(): void {
    void this.close();
  }
}

class CircleTreeProvider implements vscode.TreeDataProvider<CircleNode> {
  private readonly changed = new vscode.EventEmitter<CircleNode | undefined>();
  readonly onDidChangeTreeData = this.changed.event;

  constructor(private readonly bridge: Bridge) {}

  refresh(): void {
    this.changed.fire(undefined);
  }

  getTreeItem(node: CircleNode): vscode.TreeItem {
    switch (node.kind) {
      case "circle": {
        const item = new vscode.TreeItem(node.circle.circleName ?? node.circle.circleId, vscode.TreeItemCollapsibleState.Collapsed);
        item.id = node.circle.circleId;
        item.description = typeof node.circle["memberCount"] === "number" ? `${node.circle["memberCount"]} members` : "";
        item.tooltip = node.circle.circleDescription ?? node.circle.circleId;
        item.iconPath = new vscode.ThemeIcon("organization");
        return item;
      }
      case "topic": {
        const item = new vscode.TreeItem(node.topic.topicName ?? node.topic.topicId, vscode.TreeItemCollapsibleState.None);
        item.tooltip = node.topic.topicDescription ?? node.topic.topicId;
        item.iconPath = new vscode.ThemeIcon("comment-discussion");
        return item;
      }
      case "problem": {
        const item = new vscode.TreeItem(node.error.message, vscode.TreeItemCollapsibleState.None);
        item.description = node.error.retryable ? "retry with Refresh" : node.error.name;
        item.iconPath = new vscode.ThemeIcon("warning");
        return item;
      }
    }
  }

  async getChildren(node?: CircleNode): Promise<CircleNode[]> {
    try {
      const client = await this.bridge.get();
      if (node === undefined) {
        const { circles } = await client.circle.enumCircles();
        return circles.map((circle) => ({ kind: "circle", circle }));
      }
      if (node.kind === "circle") {
        const { topics } = await client.circle.enumTopics({ circleId: node.circle.circleId });
        return topics.map((topic) => ({ kind: "topic", topic }));
      }
      return [];
    } catch (error) {
      if (error instanceof CircleBridgeError) {
        return [{ kind: "problem", error }];
      }
      throw error;
    }
  }
}

let bridge: Bridge | undefined;

export function activate(context: vscode.ExtensionContext): void {
  const log = vscode.window.createOutputChannel("Circle Bridge");
  bridge = new Bridge(log);
  const tree = new CircleTreeProvider(bridge);
  context.subscriptions.push(
    log,
    bridge,
    vscode.window.registerTreeDataProvider("circleBridge.circles", tree),
    vscode.commands.registerCommand("circleBridge.refresh", () => tree.refresh()),
    vscode.commands.registerCommand("circleBridge.authorize", async () => {
      const client = await bridge?.get();
      if (client === undefined) {
        return;
      }
      try {
        // VS Code's CancellationToken works as is: cancelling sends $/cancelRequest.
        const result = await vscode.window.withProgress(
          { location: vscode.ProgressLocation.Notification, title: "Authorizing with CircleService…", cancellable: true },
          (_progress, token) => client.circle.initialize(token),
        );
        void vscode.window.showInformationMessage(`Circle: authorized as ${result.endUserId}`);
        tree.refresh();
      } catch (error) {
        if (!(error instanceof CircleBridgeError)) {
          throw error;
        }
        if (error.name !== "RequestCancelled") {
          void vscode.window.showErrorMessage(`Circle: ${error.message} (${error.name})`);
        }
      }
    }),
  );
}

export async function deactivate(): Promise<void> {
  await bridge?.close();
}
