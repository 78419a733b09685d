"""marginbot (两融雷达): margin-trading reports for Telegram. Wiring: settings and the command line."""
