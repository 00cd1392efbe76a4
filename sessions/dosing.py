"""Weight-based dosing: mg = mg/kg x weight (kg), kept with the weight used."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

#: Doses are recorded to a tenth of a milligram.
MG_QUANTUM = Decimal("0.1")
#: Sanity ceilings that catch a misplaced decimal point (0.5 typed as 5).
MAX_MG_PER_KG = Decimal("3.00")
MAX_FIXED_MG = Decimal("500.0")
#: Half the recording quantum: how far a stored dose may sit from mg/kg x kg.
DOSE_TOLERANCE_MG = Decimal("0.051")


def weight_based_dose_mg(*, mg_per_kg: Decimal, weight_kg: Decimal) -> Decimal:
    """Total dose in mg for ``mg_per_kg`` (mg/kg) at ``weight_kg`` (kg), to 0.1 mg."""
    if mg_per_kg <= 0 or weight_kg <= 0:
        raise ValueError("Dose and weight must be positive.")
    return (Decimal(mg_per_kg) * Decimal(weight_kg)).quantize(MG_QUANTUM, rounding=ROUND_HALF_UP)
