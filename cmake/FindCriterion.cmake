# FindCriterion: Criterion (Debian libcriterion-dev). Defines Criterion_FOUND and
# Criterion::Criterion.
include(TpFindPackage)
tp_find_package(Criterion criterion criterion/criterion.h criterion)
