"""On-demand features of the churn use case (Feast Python mode: columns in, columns out)."""

from typing import Any


def customer_ratios(inputs: dict[str, Any]) -> dict[str, Any]:
    charges, devices = inputs["monthly_charges"], inputs["num_devices"]
    tickets, tenure = inputs["support_tickets_30d"], inputs["tenure_months"]
    return {
        "charges_per_device": [
            c / d if c is not None and d else None for c, d in zip(charges, devices, strict=True)
        ],
        "tickets_per_tenure_year": [
            t * 12.0 / (m + 1) if t is not None and m is not None else None
            for t, m in zip(tickets, tenure, strict=True)
        ],
    }
