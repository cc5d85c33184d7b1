# FindJansson: Jansson, the JSON library (Debian libjansson-dev). Defines Jansson_FOUND and
# Jansson::Jansson.
include(TpFindPackage)
tp_find_package(Jansson jansson jansson.h jansson)
