# FindLibuv: libuv (Debian libuv1-dev). Defines Libuv_FOUND and Libuv::Libuv.
include(TpFindPackage)
tp_find_package(Libuv libuv uv.h uv)
