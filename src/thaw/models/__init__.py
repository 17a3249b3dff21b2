"""Recommenders: baselines and thaw's cold-start model, all behind one `Recommender` contract."""
