"""What every layer uses: errors and exit codes, secrets masking, text helpers, fault points."""
