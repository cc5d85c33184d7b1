# Installs libtickplane (core/): the headers under include/tp/, the static and the shared
# library, a pkg-config file and a CMake package (find_package(tickplane) with the imported
# targets tickplane::tickplane, shared, and tickplane::tickplane_static).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(TP_CMAKE_PACKAGE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/tickplane)

install(TARGETS tp_core tp_core_shared EXPORT tickplaneTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT library
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT library
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/core/include/tp DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        COMPONENT library FILES_MATCHING PATTERN "*.h")
install(EXPORT tickplaneTargets NAMESPACE tickplane:: DESTINATION ${TP_CMAKE_PACKAGE_DIR}
        COMPONENT library)

# The imported targets name Libuv::Libuv, Hiredis::Hiredis and OpenSSL's; the package finds
# them the way this build did, with the same find modules.
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/tickplaneConfig.cmake.in
  ${PROJECT_BINARY_DIR}/tickplaneConfig.cmake INSTALL_DESTINATION ${TP_CMAKE_PACKAGE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/tickplaneConfigVersion.cmake
  COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/tickplaneConfig.cmake
              ${PROJECT_BINARY_DIR}/tickplaneConfigVersion.cmake
              ${PROJECT_SOURCE_DIR}/cmake/FindLibuv.cmake
              ${PROJECT_SOURCE_DIR}/cmake/FindHiredis.cmake
              ${PROJECT_SOURCE_DIR}/cmake/FindJansson.cmake
              ${PROJECT_SOURCE_DIR}/cmake/TpFindPackage.cmake
        DESTINATION ${TP_CMAKE_PACKAGE_DIR} COMPONENT library)

# pkg-config: Libs for the shared library; --static adds what the static one needs. The prefix
# is found from the file's own place (${pcfiledir}), so that `cmake --install --prefix` anywhere
# gives a working file.
if(IS_ABSOLUTE ${CMAKE_INSTALL_LIBDIR})
  set(TP_PC_PREFIX ${CMAKE_INSTALL_PREFIX})
  set(TP_PC_LIBDIR ${CMAKE_INSTALL_LIBDIR})
else()
  file(RELATIVE_PATH TP_PC_UP /root/${CMAKE_INSTALL_LIBDIR}/pkgconfig /root)
  string(REGEX REPLACE "/$" "" TP_PC_UP ${TP_PC_UP})
  set(TP_PC_PREFIX "\${pcfiledir}/${TP_PC_UP}")
  set(TP_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
endif()
if(IS_ABSOLUTE ${CMAKE_INSTALL_INCLUDEDIR})
  set(TP_PC_INCLUDEDIR ${CMAKE_INSTALL_INCLUDEDIR})
else()
  set(TP_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
configure_file(${PROJECT_SOURCE_DIR}/cmake/tickplane.pc.in ${PROJECT_BINARY_DIR}/tickplane.pc
               @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/tickplane.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig
        COMPONENT library)
