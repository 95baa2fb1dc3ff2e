"""The built-in pieces: importing this module registers every one of them (scl.registry).

A new piece is one file that registers itself, plus one line here. Only the host side (the
experiment config) imports this module; pieces never do.
"""
# truths
import scl.data.gaussian  # noqa: F401
import scl.data.toys  # noqa: F401
import scl.data.categorical  # noqa: F401
import scl.data.regression  # noqa: F401
import scl.data.digits  # noqa: F401
import scl.data.mnist  # noqa: F401
import scl.data.tfds_source  # noqa: F401
# model families
import scl.families.gaussian  # noqa: F401
import scl.families.mixture  # noqa: F401
import scl.families.kde  # noqa: F401
import scl.families.categorical  # noqa: F401
import scl.families.regression  # noqa: F401
import scl.families.flow  # noqa: F401
import scl.families.diffusion  # noqa: F401
import scl.families.flow_matching  # noqa: F401
import scl.families.analytic_diffusion  # noqa: F401
# mixing regimes (this order is the order the docs and errors list them in)
import scl.mixing.replace  # noqa: F401
import scl.mixing.fresh  # noqa: F401
import scl.mixing.fixed_real  # noqa: F401
import scl.mixing.accumulate  # noqa: F401
import scl.mixing.accumulate_subsample  # noqa: F401
import scl.mixing.accumulate_decay  # noqa: F401
# stages
import scl.curation  # noqa: F401
import scl.correction  # noqa: F401
import scl.correction_histogram  # noqa: F401
import scl.correction_kmeans_class  # noqa: F401
# metrics
import scl.metrics.gaussian  # noqa: F401
import scl.metrics.samples  # noqa: F401
import scl.metrics.classical  # noqa: F401
import scl.metrics.reward  # noqa: F401
import scl.metrics.training  # noqa: F401
import scl.metrics.density  # noqa: F401
import scl.metrics.kde_variance  # noqa: F401
import scl.metrics.feature_space  # noqa: F401
import scl.metrics.classes  # noqa: F401
# theory (closed-form predictions, scl.theory; predict() takes the first that covers a config)
import scl.theory.gaussian_replace  # noqa: F401
import scl.theory.gaussian_accumulate  # noqa: F401
import scl.theory.gaussian_fresh  # noqa: F401
import scl.theory.gaussian_fixed_real  # noqa: F401
import scl.theory.kde  # noqa: F401
import scl.theory.regression  # noqa: F401
import scl.theory.wright_fisher  # noqa: F401
import scl.theory.categorical_temperature  # noqa: F401
import scl.theory.categorical_luce  # noqa: F401
import scl.theory.tilt  # noqa: F401
