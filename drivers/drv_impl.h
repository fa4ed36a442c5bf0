/* Private to drivers/: the switches each implementation file defines, and
 * helpers they share. Nothing outside drivers/ includes this. */
#ifndef XAC_DRV_IMPL_H
#define XAC_DRV_IMPL_H

#include "drv.h"

extern const drv_ops drv_mysql_ops; /* mysql.c */
extern const drv_ops drv_odbc_ops;  /* odbc.c */

#endif
