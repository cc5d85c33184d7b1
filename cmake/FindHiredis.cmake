# FindHiredis: hiredis (Debian libhiredis-dev). Defines Hiredis_FOUND and Hiredis::Hiredis.
include(TpFindPackage)
tp_find_package(Hiredis hiredis hiredis/read.h hiredis)
