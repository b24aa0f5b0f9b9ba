from circle_bridge.emulator._cli import main_cli

raise SystemExit(main_cli())
