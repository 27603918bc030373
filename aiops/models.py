"""AIOps data. The app's models arrive with its first feature issue."""
