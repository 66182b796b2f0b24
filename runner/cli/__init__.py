"""The command line: argparse front, reporters (text, JSON, JSONL), the demo."""
