"""Measuring outages: impact against a counterfactual, and concentration risk (issue 11)."""
