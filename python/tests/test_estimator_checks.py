"""scikit-learn's own estimator suite (sklearn.utils.estimator_checks) on fastknn's estimators.

Every check runs and none is marked as expected to fail (scikit-learn 1.2 from Debian). The
only skips are scikit-learn's own: check_classifiers_multilabel_output_format_decision_function
skips itself for classifiers without decision_function (as scikit-learn's KNeighborsClassifier).
"""

from sklearn.utils.estimator_checks import parametrize_with_checks

from fastknn.sklearn import (KNeighborsClassifier, KNeighborsRegressor, KNeighborsTransformer,
                             NearestNeighbors, RadiusNeighborsClassifier,
                             RadiusNeighborsRegressor, RadiusNeighborsTransformer)


@parametrize_with_checks([NearestNeighbors(), KNeighborsClassifier(), KNeighborsRegressor(),
                          KNeighborsClassifier(weights="distance", metric="manhattan"),
                          KNeighborsRegressor(weights="distance", metric="cosine"),
                          RadiusNeighborsClassifier(), RadiusNeighborsRegressor(),
                          RadiusNeighborsClassifier(radius=2.0, weights="distance",
                                                    outlier_label="most_frequent"),
                          KNeighborsTransformer(), RadiusNeighborsTransformer(),
                          RadiusNeighborsTransformer(metric="cosine", radius=0.5)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
