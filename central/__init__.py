"""The central consumer: verifies codes, applies checkouts and returns, answers kiosks."""
