"""What people look at: pictures (PNG, matplotlib) and money tables for the UI, built without Dagster."""
