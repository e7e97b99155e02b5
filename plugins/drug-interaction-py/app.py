"""Drug-interaction check, in Python: the same analytic as plugins/drug-interaction.

Input: an order {"order_id", "patient_id", "drug", "active_medications": [..]}.
Output: one alert per active medication that interacts with the new drug.
"""

import json

import weir_plugin


def normalize(drug):
    return drug.strip().lower()


class DrugInteraction(weir_plugin.Processor):
    def __init__(self, config):
        try:
            interactions = json.loads(config)["interactions"]
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"invalid config: {e}")
        if not interactions:
            raise ValueError("invalid config: `interactions` is empty")
        self.table = {}
        for it in interactions:
            a, b = (normalize(d) for d in it["drugs"])
            self.table[(a, b)] = it
            self.table[(b, a)] = it

    def process(self, batch, out):
        for event in batch:
            try:
                order = event.json()
            except ValueError as e:
                out.reject(event, f"invalid order: {e}")
                continue
            missing = next((f for f in ("patient_id", "drug", "active_medications") if order.get(f) is None), None)
            if missing:
                out.reject(event, f"missing field `{missing}`")
                continue
            drug = order["drug"]
            new_drug = normalize(drug)
            for med in order["active_medications"]:
                it = self.table.get((new_drug, normalize(med)))
                if it is None:
                    continue
                out.emit(event, {
                    "alert": "drug-interaction",
                    "order_id": order.get("order_id"),
                    "patient_id": order["patient_id"],
                    "drug": drug,
                    "interacts_with": med,
                    "severity": it["severity"],
                    "rationale": it["rationale"],
                })


WitWorld = weir_plugin.export(DrugInteraction)
